// The tools both interop servers register (stdio and Streamable HTTP), counting what they
// handle into `counts`: `echo` (its arguments back as text) and `fail` (always isError).
import { z } from "zod";

export function registerTools(server, counts) {
  server.registerTool(
    "echo",
    { description: "Returns its arguments as text", inputSchema: { seq: z.number(), id: z.string() } },
    async (args) => {
      counts.calls += 1;
      counts.ok += 1;
      return { content: [{ type: "text", text: JSON.stringify(args) }] };
    },
  );
  server.registerTool("fail", { description: "Always fails inside the tool", inputSchema: {} }, async () => {
    counts.calls += 1;
    counts.tool_errors += 1;
    return { content: [{ type: "text", text: "this tool always fails" }], isError: true };
  });
}
