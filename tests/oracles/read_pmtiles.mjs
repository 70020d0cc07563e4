// Reads a PMTiles archive with the reference `pmtiles` library: header, metadata and
// the byte length of one tile. usage: node read_pmtiles.mjs FILE Z X Y
import { readFileSync } from "node:fs";
import { PMTiles } from "pmtiles";

const [file, z, x, y] = process.argv.slice(2);
const bytes = readFileSync(file);
const source = {
  getKey: () => file,
  getBytes: async (offset, length) => {
    const slice = bytes.subarray(offset, offset + length);
    return { data: slice.buffer.slice(slice.byteOffset, slice.byteOffset + slice.byteLength) };
  },
};
const archive = new PMTiles(source);
const header = await archive.getHeader();
const metadata = await archive.getMetadata();
const tile = await archive.getZxy(+z, +x, +y);
console.log(JSON.stringify({ header, metadata, tileLength: tile ? tile.data.byteLength : null }));
