// An MCP server on the official TypeScript SDK's Streamable HTTP transport
// (StreamableHTTPServerTransport, stateful sessions, SSE replies), for wsbench's interop tests.
// Prints "listening <port>" once bound; on SIGTERM writes what it counted to
// $INTEROP_COUNTS_DIR/http-counts.json and exits. With EXPIRE_EVERY=N a session is forgotten
// after every N calls (its next request gets 404, as an expired session's does).
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import { registerTools } from "./tools.mjs";

const counts = { calls: 0, ok: 0, tool_errors: 0, sessions: 0, deleted: 0, expired: 0 };
const transports = {};
const callsBySession = {};
const expireEvery = Number(process.env.EXPIRE_EVERY || 0);

function makeServer() {
  const server = new McpServer({ name: "wsbench-interop-http", version: "1.0.0" });
  registerTools(server, counts);
  return server;
}

const http = createServer(async (req, res) => {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
  const sid = req.headers["mcp-session-id"];
  let transport = sid ? transports[sid] : undefined;
  if (!transport && req.method === "POST" && isInitializeRequest(body)) {
    transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        transports[id] = transport;
        counts.sessions += 1;
      },
    });
    transport.onclose = () => {
      if (transport.sessionId) delete transports[transport.sessionId];
    };
    await makeServer().connect(transport);
  } else if (!transport) {
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ jsonrpc: "2.0", error: { code: -32000, message: "no such session" }, id: null }));
    return;
  }
  if (req.method === "DELETE") counts.deleted += 1;
  await transport.handleRequest(req, res, body);
  if (expireEvery && sid && body?.method === "tools/call") {
    callsBySession[sid] = (callsBySession[sid] || 0) + 1;
    if (callsBySession[sid] % expireEvery === 0 && transports[sid]) {
      delete transports[sid];
      counts.expired += 1;
    }
  }
});

process.on("SIGTERM", () => {
  const dir = process.env.INTEROP_COUNTS_DIR;
  if (dir) writeFileSync(`${dir}/http-counts.json`, JSON.stringify(counts));
  process.exit(0);
});

http.listen(0, "127.0.0.1", () => {
  console.log(`listening ${http.address().port}`);
});
