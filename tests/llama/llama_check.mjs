// Runs a GGUF file in llama.cpp (node-llama-cpp, prebuilt CPU build) and prints what
// tests/llama/test_llama_cpp.cpp compares with moe: tokenization, next-token log
// probabilities, greedy generation. Run in a child process: llama.cpp aborts the
// process on some malformed files.
//   node llama_check.mjs REQUEST.json   (NODE_PATH: the node_modules holding node-llama-cpp)
// REQUEST: {"model": FILE.gguf, "context": N, "kv_type": "F32" | "F16", "flash_attention": bool (absent: default),
//           "texts": [string], "windows": [[ids]], "prompts": [[ids]], "generate": n}
// Output (one JSON object on stdout):
//   {"tokens": [[ids] per text], "detok": [string per text],
//    "logprobs": [[ln p(window[i+1] | window[..i]) for i < len - 1] per window],
//    "greedy": [[ids] per prompt], "vocab": n}
import fs from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const nlc = await import(require.resolve("node-llama-cpp", { paths: (process.env.NODE_PATH || "").split(":") }));
const req = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));

const llama = await nlc.getLlama({ gpu: false, build: "never", skipDownload: true, logLevel: "error" });
const model = await llama.loadModel({ modelPath: req.model, useMmap: true });
const context = await model.createContext({
  contextSize: req.context,
  batchSize: req.context,
  sequences: 1,
  // false: attention in f32 (llama.cpp's flash attention, on by default on CPU, computes
  // in f16 whatever the cache type); absent: llama.cpp's default.
  ...(typeof req.flash_attention === "boolean" ? { flashAttention: req.flash_attention } : {}),
  threads: 1,  // one thread: the same summation order every run
  experimentalKvCacheKeyType: req.kv_type || "F32",
  experimentalKvCacheValueType: req.kv_type || "F32",
});
const seq = context.getSequence();

const out = { tokens: [], detok: [], logprobs: [], greedy: [], vocab: model.tokens.sizeInfo?.() ?? null };
for (const text of req.texts || []) {
  const ids = model.tokenize(text, false);
  out.tokens.push(Array.from(ids));
  out.detok.push(model.detokenize(ids, false));
}

for (const w of req.windows || []) {
  await seq.clearHistory();
  const input = w.slice(0, -1).map((t) => [t, { generateNext: { probabilities: true } }]);
  const res = await seq.controlledEvaluate(input);
  const lp = [];
  for (let i = 0; i < input.length; i++) {
    const probs = res[i]?.next?.probabilities;
    if (!probs) throw new Error(`no probabilities at position ${i}`);
    const p = probs.get(w[i + 1]) ?? 0;
    lp.push(p > 0 ? Math.log(p) : -1e30);
  }
  out.logprobs.push(lp);
}

for (const prompt of req.prompts || []) {
  await seq.clearHistory();
  const gen = [];
  let next = prompt.map((t) => t);
  for (let k = 0; k < req.generate; k++) {
    const items = next.map((t, i) =>
      i === next.length - 1 ? [t, { generateNext: { token: true, options: { temperature: 0 } } }] : t);
    const res = await seq.controlledEvaluate(items);
    const t = res[items.length - 1]?.next?.token;
    if (t == null) throw new Error("no token generated");
    gen.push(t);
    next = [t];
  }
  out.greedy.push(gen);
}

process.stdout.write(JSON.stringify(out) + "\n");
await context.dispose();
await model.dispose();
await llama.dispose();
