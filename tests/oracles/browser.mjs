// Shared harness for the browser oracles: serves a page plus static roots on
// 127.0.0.1, opens it in headless Chromium (WebGL through SwiftShader), waits for the
// page to set window.__result, saves a screenshot and returns the result.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { chromium } from "playwright-core";

const TYPES = { ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".json": "application/json", ".wasm": "application/wasm" };

/** roots: { "/prefix/": "/abs/dir" } */
export async function runPage(html, roots, screenshot) {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname === "/") return res.writeHead(200, { "content-type": "text/html" }).end(html);
    for (const [prefix, dir] of Object.entries(roots)) {
      if (!url.pathname.startsWith(prefix)) continue;
      const file = normalize(join(dir, url.pathname.slice(prefix.length)));
      if (!file.startsWith(dir)) return res.writeHead(403).end();
      let body;
      try {
        body = await readFile(file);
      } catch {
        return res.writeHead(404).end();
      }
      return res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(body);
    }
    res.writeHead(404).end();
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
           "--disable-background-networking", "--disable-component-update", "--no-first-run"],
  });
  try {
    const tab = await browser.newPage({ viewport: { width: 1024, height: 768 } });
    const errors = [];
    tab.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    tab.on("pageerror", (e) => errors.push(String(e)));
    await tab.goto(`http://127.0.0.1:${server.address().port}/`);
    await tab.waitForFunction(() => window.__result !== undefined, null, { timeout: 150000 });
    const result = await tab.evaluate(() => window.__result);
    if (screenshot) await tab.screenshot({ path: screenshot });
    result.console = errors.slice(0, 5);
    return result;
  } finally {
    await browser.close();
    server.close();
  }
}
