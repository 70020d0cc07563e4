// Decodes point cloud GLBs with glTF-Transform (not our decoder): per file the point
// count, classification histogram and every point's position after its node's
// transform (glTF axes, the tile content's frame), intensity and class.
// usage: node decode_points.mjs FILE...
import { readFileSync } from "node:fs";
import { NodeIO } from "@gltf-transform/core";
import { ALL_EXTENSIONS } from "@gltf-transform/extensions";

const io = new NodeIO().registerExtensions(ALL_EXTENSIONS);
const out = [];
for (const file of process.argv.slice(2)) {
  const doc = await io.readBinary(new Uint8Array(readFileSync(file)));
  const result = { file, count: 0, classes: {}, positions: [], intensity: [], classification: [] };
  for (const node of doc.getRoot().listNodes()) {
    const mesh = node.getMesh();
    if (!mesh) continue;
    const m = node.getWorldMatrix();
    for (const prim of mesh.listPrimitives()) {
      if (prim.getMode() !== 0) continue;
      const pos = prim.getAttribute("POSITION");
      const cls = prim.getAttribute("_CLASSIFICATION");
      const inten = prim.getAttribute("_INTENSITY");
      const p = [0, 0, 0];
      for (let i = 0; i < pos.getCount(); i++) {
        pos.getElement(i, p);
        result.positions.push(
          m[0] * p[0] + m[4] * p[1] + m[8] * p[2] + m[12],
          m[1] * p[0] + m[5] * p[1] + m[9] * p[2] + m[13],
          m[2] * p[0] + m[6] * p[1] + m[10] * p[2] + m[14],
        );
        const c = cls ? cls.getScalar(i) : 0;
        result.classes[c] = (result.classes[c] ?? 0) + 1;
        result.classification.push(c);
        result.intensity.push(inten ? inten.getScalar(i) : 0);
      }
      result.count += pos.getCount();
    }
  }
  out.push(result);
}
console.log(JSON.stringify(out));
