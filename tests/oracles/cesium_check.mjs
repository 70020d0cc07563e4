// Loads a 3D Tiles tileset in CesiumJS inside headless Chromium (WebGL through
// SwiftShader), waits until every tile is loaded at full detail, picks the feature at
// the centre of the screen and prints what Cesium saw as JSON; saves a screenshot.
// usage: node cesium_check.mjs TILESET_URL SCREENSHOT.png [MAX_SSE (1)] [RANGE (1.2 radii)]
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { runPage } from "./browser.mjs";

const [tilesetUrl, screenshot, maxSse = "1", range = "1.2"] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
const cesiumRoot = join(here, "node_modules/cesium/Build/Cesium");
const page = `<!doctype html><html><head>
<script src="/cesium/Cesium.js"></script>
<link href="/cesium/Widgets/widgets.css" rel="stylesheet">
<style>html,body,#c{margin:0;width:100%;height:100%;overflow:hidden}</style></head>
<body><div id="c"></div><script type="module">
const out = { errors: [] };
try {
  const viewer = new Cesium.Viewer("c", {
    baseLayer: false, baseLayerPicker: false, geocoder: false, timeline: false, animation: false,
    homeButton: false, sceneModePicker: false, navigationHelpButton: false, infoBox: false,
    selectionIndicator: false, fullscreenButton: false, skyBox: false, skyAtmosphere: false,
  });
  viewer.scene.globe.show = false;
  const tileset = await Cesium.Cesium3DTileset.fromUrl(${JSON.stringify(tilesetUrl)}, { maximumScreenSpaceError: ${Number(maxSse)} });
  tileset.tileFailed.addEventListener((e) => out.errors.push(String(e.message)));
  viewer.scene.primitives.add(tileset);
  const sphere = tileset.boundingSphere;
  viewer.camera.viewBoundingSphere(sphere, new Cesium.HeadingPitchRange(0.3, -0.9, sphere.radius * ${Number(range)}));
  const loaded = await new Promise((resolve) => {
    const start = performance.now();
    const tick = () => {
      if (tileset.tilesLoaded && performance.now() - start > 1000) return resolve(true);
      if (performance.now() - start > 90000) return resolve(false);
      setTimeout(tick, 250);
    };
    tick();
  });
  let features = 0, tiles = 0, points = 0;
  const visit = (tile) => {
    if (tile.content && tile.contentReady) { tiles++; features += tile.content.featuresLength; points += tile.content.pointsLength ?? 0; }
    tile.children.forEach(visit);
  };
  visit(tileset.root);
  viewer.render();
  const canvas = viewer.scene.canvas;
  let picked = null;
  for (const [fx, fy] of [[0.5, 0.5], [0.45, 0.55], [0.55, 0.45], [0.4, 0.5], [0.6, 0.5]]) {
    const hit = viewer.scene.pick(new Cesium.Cartesian2(canvas.clientWidth * fx, canvas.clientHeight * fy));
    if (hit instanceof Cesium.Cesium3DTileFeature) {
      picked = { fid: String(hit.getProperty("fid")), height: hit.getProperty("height"), names: hit.getPropertyIds() };
      break;
    }
  }
  Object.assign(out, { loaded, tiles, features, points, picked });
} catch (e) {
  out.errors.push(String(e && e.stack || e));
}
window.__result = out;
</script></body></html>`;

console.log(JSON.stringify(await runPage(page, { "/cesium/": cesiumRoot }, screenshot)));
