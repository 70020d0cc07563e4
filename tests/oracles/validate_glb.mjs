// Runs the Khronos glTF validator on GLB files; prints one JSON summary per file.
// usage: node validate_glb.mjs FILE...
import { readFileSync } from "node:fs";
import validator from "gltf-validator";

const results = [];
for (const file of process.argv.slice(2)) {
  const report = await validator.validateBytes(new Uint8Array(readFileSync(file)), { maxIssues: 50 });
  results.push({
    file,
    errors: report.issues.numErrors,
    warnings: report.issues.numWarnings,
    messages: report.issues.messages.filter((m) => m.severity === 0).slice(0, 5),
    extensionsUsed: report.info?.extensionsUsed ?? [],
  });
}
console.log(JSON.stringify(results));
