// Drives our WebAssembly viewer, as cim-server serves it, in headless Chromium (WebGL2
// through SwiftShader) and reports what a user would see:
//   node browser_viewer.mjs --url URL --out DIR [--click X,Y [--wait-log TEXT]] [--bench | --until-status] [--timeout S] [--webgpu] [--break-workers]
// --webgpu gives the browser a WebGPU adapter (SwiftShader's, behind Chromium's
// --enable-unsafe-webgpu); without it headless Chromium here has none.
// --break-workers answers the decoding workers' script with a 404, as a proxy that
// dropped the file would, so every worker fails before it takes a job.
// It waits for the viewer's `milestone view_complete` console line (every visible tile
// drawn), saves view.png, then (with --click) clicks, waits for the page's
// #cim-selection to fill and saves clicked.png. With --bench it waits for the viewer's
// `bench {...}` line instead; with --until-status, for the page's status line to say
// something other than "Loading" (a page that cannot start). Prints one JSON object: milestones in ms since the
// navigation began, every response (url, status, type, encoding, bytes), every
// WebSocket (url, frames received, closed), console
// errors and page errors, the Web Workers started, the selection text and the bench figures.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith("--") ? [...pairs, [a.slice(2), all[i + 1]?.startsWith("--") || all[i + 1] === undefined ? true : all[i + 1]]] : pairs), []),
);
const timeout = Number(args.timeout ?? 300) * 1000;
mkdirSync(args.out, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
         // WebGPU canvases need the compositor on Vulkan (SwiftShader's): on the GL
         // path Chromium finds no shared-image backing for their swap chain and the
         // device is lost after the first frame.
         ...(args.webgpu
           ? ["--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-angle=vulkan", "--use-vulkan=swiftshader"]
           : ["--disable-gpu", "--use-angle=swiftshader"])],
});
const result = { milestones: {}, responses: [], websockets: [], workers: [], errors: [], log: [], selection: null, bench: null };
try {
  const page = await browser.newPage({ viewport: { width: 800, height: 600 } });
  if (args["break-workers"]) {
    await page.route("**/viewer/decode-worker.js", (route) => route.fulfill({ status: 404, contentType: "text/plain", body: "gone" }));
  }
  let start = Date.now();
  let resolveBench;
  const benchLine = new Promise((resolve) => { resolveBench = resolve; });
  const milestone = {};
  const reached = (name) => new Promise((resolve) => { milestone[name] = resolve; });
  const viewComplete = reached("view_complete");
  const seen = [];
  page.on("console", (m) => {
    const text = m.text();
    if (args["wait-log"] && text.includes(args["wait-log"])) seen.push(text);
    if (m.type() === "error") result.errors.push(text);
    if (result.log.length < 200) result.log.push(`${m.type()}: ${text.slice(0, 300)}`);
    const hit = /^milestone (\w+)/.exec(text);
    if (hit && result.milestones[hit[1]] === undefined) {
      result.milestones[hit[1]] = Date.now() - start;
      milestone[hit[1]]?.();
    }
    if (text.startsWith("bench ")) resolveBench(JSON.parse(text.slice(6)));
  });
  page.on("pageerror", (e) => result.errors.push(`page error: ${e}`));
  // Any page error ends the wait at once, even one thrown while the page loads.
  const failed = new Promise((_, reject) => page.on("pageerror", (e) => reject(new Error(`page error: ${e}`))));
  failed.catch(() => {});
  page.on("response", async (r) => {
    const headers = r.headers();
    const entry = { url: r.url(), status: r.status(), type: headers["content-type"] ?? null, encoding: headers["content-encoding"] ?? null };
    result.responses.push(entry);
    try { entry.bytes = (await r.body()).length; } catch { entry.bytes = null; }
  });
  // Web Workers the page starts (the viewer's tile decoders), and their errors.
  page.on("worker", (w) => {
    result.workers.push(w.url());
  });
  page.on("websocket", (ws) => {
    const entry = { url: ws.url(), frames_received: 0, closed: false };
    result.websockets.push(entry);
    ws.on("framereceived", () => { entry.frames_received += 1; });
    ws.on("close", () => { entry.closed = true; });
  });
  start = Date.now();
  await page.goto(args.url, { waitUntil: "load" });
  result.milestones.load = Date.now() - start;
  // unref: a pending deadline must not keep node running once the page is done.
  const deadline = (what) => new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeout).unref());
  if (args["until-status"]) {
    await page.waitForFunction(() => {
      const text = document.getElementById("cim-status")?.textContent ?? "";
      return text !== "" && !text.startsWith("Loading");
    }, null, { timeout });
  } else if (args.bench) {
    result.bench = await Promise.race([benchLine, failed, deadline("the bench line")]);
  } else {
    await Promise.race([viewComplete, failed, deadline("milestone view_complete")]);
    // A few frames for the last tiles to be on screen (the native capture waits 20).
    await page.waitForTimeout(1500);
    await page.screenshot({ path: join(args.out, "view.png") });
    if (args.click) {
      const [x, y] = String(args.click).split(",").map(Number);
      // winit learns the cursor position from pointer moves, as with a real mouse.
      await page.mouse.move(x - 5, y - 5);
      await page.mouse.move(x, y, { steps: 5 });
      await page.waitForTimeout(300);
      await page.mouse.down();
      await page.waitForTimeout(100);
      await page.mouse.up();
      await page.waitForFunction(() => document.getElementById("cim-selection")?.textContent.includes(":"), null, { timeout: 60000 });
      result.selection = await page.evaluate(() => document.getElementById("cim-selection").textContent);
      // --wait-log TEXT: something the click sets off (fonts fetched on demand) must
      // log TEXT before the picture; result.waited says whether it did within 3 min, and
      // result.waited_ms how long that took.
      if (args["wait-log"]) {
        const since = Date.now();
        while (seen.length === 0 && Date.now() < since + 180000) await page.waitForTimeout(200);
        result.waited = seen[0] ?? null;
        result.waited_ms = Date.now() - since;
      }
      await page.waitForTimeout(1500);
      await page.screenshot({ path: join(args.out, "clicked.png") });
    }
  }
  result.status = await page.evaluate(() => document.getElementById("cim-status")?.textContent ?? null);
} catch (e) {
  result.failure = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
