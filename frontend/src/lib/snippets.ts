// The playground's request as code to paste elsewhere: Python (the `openai` package), curl and
// JavaScript (fetch), one pure function per model kind. Each snippet sends exactly the request the
// playground sends, to model-server's OpenAI-style API behind the gateway (`<origin>/v1`), with the
// API key read from the environment (never a literal in the text).

/** The gateway's address in development (`make dev`): model-server's routes are under /v1. */
export const DEFAULT_BASE_URL = 'http://localhost:8000/v1';
/** The environment variable the snippets read the API key from (create one on the Keys page). */
export const KEY_ENV = 'FTD_API_KEY';

/** The UI's development server (vite, `make dev`): scripts call the gateway instead. */
const DEV_UI_PORT = '8004';

/**
 * Where a snippet sends its request, seen from the page's origin: the gateway that serves this
 * page also serves /v1; the development UI server only proxies it, so snippets name the gateway.
 */
export function snippetBaseUrl(origin: string): string {
	let url: URL;
	try {
		url = new URL(origin);
	} catch {
		return DEFAULT_BASE_URL;
	}
	if (url.port === DEV_UI_PORT) return DEFAULT_BASE_URL;
	return `${url.origin}/v1`;
}

export interface Snippets {
	python: string;
	curl: string;
	javascript: string;
}

export interface SnippetTarget {
	/** The `model` to send (`owner/name`). */
	model: string;
	/** OpenAI-compatible base URL, ending in /v1. */
	baseUrl: string;
	/** The environment variable holding the API key. */
	keyEnv?: string;
}

export type ChatTurn = { role: 'system' | 'user' | 'assistant'; content: string };

// Python string literal: JSON's escaping is valid Python (no f-string, no nested quotes).
const py = (s: string) => JSON.stringify(s);
const pyList = (xs: readonly string[]) => `[${xs.map(py).join(', ')}]`;
// Single-quoted shell word: close, escape the quote, reopen.
const sh = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const js = (v: unknown) => JSON.stringify(v);
const base = (t: SnippetTarget) => t.baseUrl.replace(/\/+$/, '');
const env = (t: SnippetTarget) => {
	const name = t.keyEnv ?? KEY_ENV;
	if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`not an environment variable name: ${name}`);
	return name;
};

function pythonHead(t: SnippetTarget): string[] {
	return [
		'import os',
		'',
		'from openai import OpenAI',
		'',
		`client = OpenAI(base_url=${py(base(t))}, api_key=os.environ[${py(env(t))}])`,
		''
	];
}

function curl(t: SnippetTarget, path: string, body: unknown, stream = false): string {
	return [
		`curl -sS${stream ? 'N' : ''} --fail-with-body ${sh(`${base(t)}${path}`)} \\`,
		`  -H "Authorization: Bearer $${env(t)}" \\`,
		'  -H "Content-Type: application/json" \\',
		`  -d ${sh(js(body))}`
	].join('\n');
}

function fetchHead(t: SnippetTarget, path: string, body: unknown): string[] {
	return [
		`const response = await fetch(${js(`${base(t)}${path}`)}, {`,
		"\tmethod: 'POST',",
		'\theaders: {',
		`\t\tAuthorization: \`Bearer \${process.env.${env(t)}}\`,`,
		"\t\t'Content-Type': 'application/json'",
		'\t},',
		`\tbody: JSON.stringify(${js(body)})`,
		'});',
		'if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`);'
	];
}

/** Embeddings of a text pair and their cosine similarity. */
export function embeddingSnippets(t: SnippetTarget, texts: readonly [string, string]): Snippets {
	const body = { model: t.model, input: [...texts] };
	return {
		python: [
			...pythonHead(t),
			`result = client.embeddings.create(model=${py(t.model)}, input=${pyList(texts)})`,
			'a, b = (item.embedding for item in result.data)',
			'dot = sum(x * y for x, y in zip(a, b))',
			'norm = (sum(x * x for x in a) * sum(y * y for y in b)) ** 0.5',
			'print(f"cosine similarity: {dot / norm:.4f}")'
		].join('\n'),
		curl: curl(t, '/embeddings', { ...body, encoding_format: 'float' }),
		javascript: [
			...fetchHead(t, '/embeddings', { ...body, encoding_format: 'float' }),
			'const [a, b] = (await response.json()).data.map((d) => d.embedding);',
			'const dot = a.reduce((s, x, i) => s + x * b[i], 0);',
			'const norm = Math.hypot(...a) * Math.hypot(...b);',
			"console.log('cosine similarity:', (dot / norm).toFixed(4));"
		].join('\n')
	};
}

/** The label (and every label's score) of each text. */
export function classifierSnippets(t: SnippetTarget, texts: readonly string[]): Snippets {
	const body = { model: t.model, input: [...texts] };
	return {
		python: [
			...pythonHead(t),
			'# /classify is not part of the OpenAI API: post to it with the same client.',
			'result = client.post(',
			'    "/classify",',
			'    cast_to=object,',
			`    body={"model": ${py(t.model)}, "input": ${pyList(texts)}},`,
			')',
			'for item in result["data"]:',
			'    print(item["label"], round(item["score"], 4), item["scores"])'
		].join('\n'),
		curl: curl(t, '/classify', body),
		javascript: [
			...fetchHead(t, '/classify', body),
			'for (const item of (await response.json()).data) {',
			'\tconsole.log(item.label, item.score.toFixed(4), item.scores);',
			'}'
		].join('\n')
	};
}

/** A chat completion, streamed token by token. */
export function chatSnippets(t: SnippetTarget, messages: readonly ChatTurn[], maxTokens = 128): Snippets {
	const msgs = messages.map((m) => ({ role: m.role, content: m.content }));
	const body = { model: t.model, messages: msgs, max_tokens: maxTokens, stream: true };
	const pyMessages = msgs.map((m) => `        {"role": ${py(m.role)}, "content": ${py(m.content)}},`);
	return {
		python: [
			...pythonHead(t),
			'stream = client.chat.completions.create(',
			`    model=${py(t.model)},`,
			'    messages=[',
			...pyMessages,
			'    ],',
			`    max_tokens=${maxTokens},`,
			'    stream=True,',
			')',
			'for chunk in stream:',
			'    if chunk.choices and chunk.choices[0].delta.content:',
			'        print(chunk.choices[0].delta.content, end="", flush=True)',
			'print()'
		].join('\n'),
		curl: curl(t, '/chat/completions', body, true),
		javascript: [
			...fetchHead(t, '/chat/completions', body),
			'// Server-sent events: one `data:` line per chunk, then `data: [DONE]`.',
			'const decoder = new TextDecoder();',
			"let buffer = '';",
			'for await (const bytes of response.body) {',
			'\tbuffer += decoder.decode(bytes, { stream: true });',
			'\tconst lines = buffer.split(/\\r?\\n/);',
			'\tbuffer = lines.pop();',
			'\tfor (const line of lines) {',
			"\t\tif (!line.startsWith('data: ') || line === 'data: [DONE]') continue;",
			'\t\tconst delta = JSON.parse(line.slice(6)).choices[0]?.delta?.content;',
			'\t\tif (delta) process.stdout.write(delta);',
			'\t}',
			'}',
			"process.stdout.write('\\n');"
		].join('\n')
	};
}
