// A Web Worker that decodes tiles for the city viewer off the page's thread. It runs
// the page's own module, handed over compiled in the first message; the module's
// start finds itself in a worker and takes every later message itself
// (viewer/src/render/platform/web.rs: serve_decoding).
self.onmessage = async (event) => {
  self.onmessage = null;
  const { module, script } = event.data;
  const viewer = await import(script);
  await viewer.default({ module_or_path: module });
};
