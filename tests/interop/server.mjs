// An MCP server built on the official TypeScript SDK (McpServer + StdioServerTransport), for
// wsbench's interoperability tests: nobody here wrote the protocol code it runs. It counts the
// calls it handled and, when its stdin ends (the session is over), writes them to
// $INTEROP_COUNTS_DIR/counts-<pid>.json so the test can compare them with wsbench's counts.
import { writeFileSync } from "node:fs";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { registerTools } from "./tools.mjs";

const counts = { calls: 0, ok: 0, tool_errors: 0 };
const server = new McpServer({ name: "wsbench-interop", version: "1.0.0" });

registerTools(server, counts);

process.stdin.on("end", () => {
  const dir = process.env.INTEROP_COUNTS_DIR;
  if (dir) {
    writeFileSync(`${dir}/counts-${process.pid}.json`, JSON.stringify(counts));
  }
  process.exit(0);
});

await server.connect(new StdioServerTransport());
