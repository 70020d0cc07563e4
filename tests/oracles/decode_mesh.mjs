// Decodes triangle GLBs with glTF-Transform (not our decoder): per file and primitive
// the material name, positions after the node's transform (glTF axes, the tile
// content's frame), triangle indices, COLOR_0 (0..1) and _FEATURE_ID_0 when present.
// usage: node decode_mesh.mjs FILE...
import { readFileSync } from "node:fs";
import { NodeIO } from "@gltf-transform/core";
import { ALL_EXTENSIONS } from "@gltf-transform/extensions";

const io = new NodeIO().registerExtensions(ALL_EXTENSIONS);
const out = [];
for (const file of process.argv.slice(2)) {
  const doc = await io.readBinary(new Uint8Array(readFileSync(file)));
  const primitives = [];
  for (const node of doc.getRoot().listNodes()) {
    const mesh = node.getMesh();
    if (!mesh) continue;
    const m = node.getWorldMatrix();
    for (const prim of mesh.listPrimitives()) {
      if (prim.getMode() !== 4) continue;
      const pos = prim.getAttribute("POSITION");
      const color = prim.getAttribute("COLOR_0");
      const fid = prim.getAttribute("_FEATURE_ID_0");
      const result = {
        material: prim.getMaterial()?.getName() ?? null,
        positions: [], indices: Array.from(prim.getIndices()?.getArray() ?? []),
        colors: color ? [] : null, feature_ids: fid ? [] : null,
        has_normals: !!prim.getAttribute("NORMAL"),
      };
      const p = [0, 0, 0];
      const c = [0, 0, 0, 0];
      for (let i = 0; i < pos.getCount(); i++) {
        pos.getElement(i, p);
        result.positions.push(
          m[0] * p[0] + m[4] * p[1] + m[8] * p[2] + m[12],
          m[1] * p[0] + m[5] * p[1] + m[9] * p[2] + m[13],
          m[2] * p[0] + m[6] * p[1] + m[10] * p[2] + m[14],
        );
        if (color) {
          color.getElement(i, c);
          result.colors.push(c[0], c[1], c[2]);
        }
        if (fid) result.feature_ids.push(fid.getScalar(i));
      }
      primitives.push(result);
    }
  }
  out.push({ file, primitives });
}
console.log(JSON.stringify(out));
