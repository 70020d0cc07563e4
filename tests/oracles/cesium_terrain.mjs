// Reads a quantized-mesh terrain with CesiumJS's own terrain provider inside headless
// Chromium: samples the most detailed heights at the given points
// (sampleTerrainMostDetailed), then shows the terrain lit by its vertex normals
// (the octvertexnormals extension) on Cesium's globe and saves a screenshot.
// usage: node cesium_terrain.mjs TERRAIN_URL '[[lon,lat],...]' SCREENSHOT.png
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { runPage } from "./browser.mjs";

const [terrainUrl, pointsJson, screenshot] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
const cesiumRoot = join(here, "node_modules/cesium/Build/Cesium");
const page = `<!doctype html><html><head>
<script src="/cesium/Cesium.js"></script>
<link href="/cesium/Widgets/widgets.css" rel="stylesheet">
<style>html,body,#c{margin:0;width:100%;height:100%;overflow:hidden}</style></head>
<body><div id="c"></div><script type="module">
const out = { errors: [] };
try {
  const provider = await Cesium.CesiumTerrainProvider.fromUrl(${JSON.stringify(terrainUrl)}, { requestVertexNormals: true });
  out.hasVertexNormals = provider.hasVertexNormals;
  provider.errorEvent.addEventListener((e) => out.errors.push(String(e.message)));
  const points = ${pointsJson};
  const sampled = await Cesium.sampleTerrainMostDetailed(provider, points.map(([lon, lat]) => Cesium.Cartographic.fromDegrees(lon, lat)));
  out.heights = sampled.map((c) => c.height);
  const viewer = new Cesium.Viewer("c", {
    terrainProvider: provider, baseLayer: false, baseLayerPicker: false, geocoder: false, timeline: false,
    animation: false, homeButton: false, sceneModePicker: false, navigationHelpButton: false,
    infoBox: false, selectionIndicator: false, fullscreenButton: false, skyBox: false, skyAtmosphere: false,
  });
  viewer.scene.globe.baseColor = Cesium.Color.fromCssColorString("#7a9a6a");
  viewer.scene.globe.enableLighting = true;
  viewer.scene.light = new Cesium.DirectionalLight({ direction: new Cesium.Cartesian3(0.3, 0.6, -0.75) });
  const [lon, lat] = points[0];
  viewer.camera.setView({
    destination: Cesium.Cartesian3.fromDegrees(lon + 0.02, lat - 0.025, 1800),
    orientation: { heading: Cesium.Math.toRadians(-30), pitch: Cesium.Math.toRadians(-25), roll: 0 },
  });
  out.loaded = await new Promise((resolve) => {
    const start = performance.now();
    const tick = () => {
      if (viewer.scene.globe.tilesLoaded && performance.now() - start > 1500) return resolve(true);
      if (performance.now() - start > 90000) return resolve(false);
      viewer.render();
      setTimeout(tick, 250);
    };
    tick();
  });
  viewer.render();
} catch (e) {
  out.errors.push(String(e && e.stack || e));
}
window.__result = out;
</script></body></html>`;

console.log(JSON.stringify(await runPage(page, { "/cesium/": cesiumRoot }, screenshot)));
