// Renders a vector-tile layer from its TileJSON in MapLibre GL JS inside headless
// Chromium, waits until the map is idle, and prints the features MapLibre rendered
// (ids, geometry types, properties) as JSON; saves a screenshot.
// usage: node maplibre_check.mjs TILEJSON_URL LAYER LON LAT ZOOM SCREENSHOT.png
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { runPage } from "./browser.mjs";

const [tilejson, layer, lon, lat, zoom, screenshot] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
const page = `<!doctype html><html><head>
<link href="/maplibre/maplibre-gl.css" rel="stylesheet">
<script>setTimeout(() => { window.__result ??= { errors: ["map never became idle"] }; }, 100000);</script>
<style>html,body,#c{margin:0;width:100%;height:100%}</style></head>
<body><div id="c"></div><script type="module">
import * as maplibregl from "/maplibre/maplibre-gl.mjs";
const source = ${JSON.stringify(layer)};
const map = new maplibregl.Map({
  container: "c", center: [${+lon}, ${+lat}], zoom: ${+zoom}, attributionControl: false, fadeDuration: 0,
  style: { version: 8, sources: { s: { type: "vector", url: ${JSON.stringify(tilejson)} } }, layers: [
    { id: "bg", type: "background", paint: { "background-color": "#f4f1ea" } },
    { id: "fill", type: "fill", source: "s", "source-layer": source, filter: ["==", ["geometry-type"], "Polygon"],
      paint: { "fill-color": "#9aa4b1", "fill-outline-color": "#444" } },
    { id: "line", type: "line", source: "s", "source-layer": source, filter: ["==", ["geometry-type"], "LineString"],
      paint: { "line-color": "#c0392b", "line-width": 1.5 } },
  ] },
});
const errors = [];
map.on("error", (e) => errors.push(String(e.error && e.error.message || e)));
map.once("idle", () => {
  const rendered = map.queryRenderedFeatures();
  const ids = [...new Set(rendered.map((f) => f.id))];
  window.__result = {
    errors, rendered: rendered.length, distinct: ids.length, ids: ids.slice(0, 2000),
    types: [...new Set(rendered.map((f) => f.geometry.type))],
    sample: rendered.slice(0, 3).map((f) => ({ id: f.id, properties: f.properties })),
    maxzoom: map.getSource("s").maxzoom,
  };
});
</script></body></html>`;
console.log(JSON.stringify(await runPage(page, { "/maplibre/": join(here, "node_modules/maplibre-gl/dist") }, screenshot)));
