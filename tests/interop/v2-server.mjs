// An MCP server on the official TypeScript SDK v2 (`@modelcontextprotocol/server`), which speaks
// the stateless 2026-07-28 revision and falls back to the 2025 ones, for wsbench's interop
// tests. `node v2-server.mjs stdio` serves stdin/stdout (serveStdio) and, when stdin ends,
// writes its counts to $INTEROP_COUNTS_DIR/counts-<pid>.json; `node v2-server.mjs http` serves
// Streamable HTTP (createMcpHandler behind node:http), prints "listening <port>", and on
// SIGTERM writes $INTEROP_COUNTS_DIR/http-counts.json. Counts are per era, so the test can
// tell which revision wsbench spoke.
import { createServer } from "node:http";
import { writeFileSync } from "node:fs";
import { McpServer, createMcpHandler } from "@modelcontextprotocol/server";
import { serveStdio } from "@modelcontextprotocol/server/stdio";
import { z } from "zod";

const counts = { calls: 0, ok: 0, tool_errors: 0, modern: 0, legacy: 0 };

function makeServer(ctx) {
  counts[ctx?.era === "legacy" ? "legacy" : "modern"] += 1;
  const server = new McpServer({ name: "wsbench-interop-v2", version: "1.0.0" });
  server.registerTool(
    "echo",
    { description: "Returns its arguments as text", inputSchema: z.object({ seq: z.number(), id: z.string() }) },
    async (args) => {
      counts.calls += 1;
      counts.ok += 1;
      return { content: [{ type: "text", text: JSON.stringify(args) }] };
    },
  );
  server.registerTool("fail", { description: "Always fails inside the tool" }, async () => {
    counts.calls += 1;
    counts.tool_errors += 1;
    return { content: [{ type: "text", text: "this tool always fails" }], isError: true };
  });
  return server;
}

function write(name) {
  const dir = process.env.INTEROP_COUNTS_DIR;
  if (dir) writeFileSync(`${dir}/${name}`, JSON.stringify(counts));
}

if (process.argv[2] === "http") {
  const handler = createMcpHandler(makeServer);
  const http = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      if (typeof v === "string") headers.set(k, v);
    }
    const request = new Request(`http://${req.headers.host}${req.url}`, {
      method: req.method,
      headers,
      body: req.method === "POST" ? Buffer.concat(chunks) : undefined,
    });
    const response = await handler.fetch(request);
    res.writeHead(response.status, Object.fromEntries(response.headers));
    res.end(Buffer.from(await response.arrayBuffer()));
  });
  process.on("SIGTERM", () => {
    write("http-counts.json");
    process.exit(0);
  });
  http.listen(0, "127.0.0.1", () => console.log(`listening ${http.address().port}`));
} else {
  process.stdin.on("end", () => {
    write(`counts-${process.pid}.json`);
    process.exit(0);
  });
  serveStdio(makeServer);
}
