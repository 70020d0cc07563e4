// Decodes an (uncompressed) MVT file with @mapbox/vector-tile and prints JSON:
// usage: node decode_mvt.mjs FILE Z X Y
import { readFileSync } from "node:fs";
import Pbf from "pbf";
import { VectorTile } from "@mapbox/vector-tile";

const [file, z, x, y] = process.argv.slice(2);
const tile = new VectorTile(new Pbf(readFileSync(file)));
const out = {};
for (const [name, layer] of Object.entries(tile.layers)) {
  const features = [];
  for (let i = 0; i < layer.length; i++) {
    const f = layer.feature(i);
    features.push({ id: f.id, type: f.type, properties: f.properties, geojson: f.toGeoJSON(+x, +y, +z).geometry });
  }
  out[name] = { version: layer.version, extent: layer.extent, features };
}
console.log(JSON.stringify(out));
