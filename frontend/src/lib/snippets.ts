// Usage snippets for a deployed model, against the server that serves it (ftd-serve's
// OpenAI-compatible /v1 routes, or an OpenAI-compatible LoRA server behind LiteLLM).
import type { JobType } from '$lib/api/types';

// ftd-serve's default address in development (docs/registry.md).
export const DEFAULT_SERVE_URL = 'http://localhost:8005/v1';

export interface SnippetTarget {
	jobType: JobType | null;
	/** The `model` name the server knows it by. */
	model: string;
	/** OpenAI-compatible base URL, ending in /v1. */
	baseUrl: string;
	/** The environment variable that holds the server's API key, when it needs one. */
	keyEnv?: string | null;
}

const json = (v: unknown) => JSON.stringify(v);
// Single-quoted shell string: close, escape the quote, reopen.
const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const pyq = (s: string) => JSON.stringify(s);

export function curlSnippet(t: SnippetTarget): string {
	const base = t.baseUrl.replace(/\/+$/, '');
	const auth = t.keyEnv ? ` \\\n  -H "Authorization: Bearer $${t.keyEnv}"` : '';
	if (t.jobType === 'classifier') {
		return `curl -s ${base}/classify \\\n  -H "Content-Type: application/json"${auth} \\\n  -d ${shq(json({ model: t.model, input: ['This product works great', 'Terrible support'] }))}`;
	}
	if (t.jobType === 'llm_lora') {
		return `curl -s ${base}/chat/completions \\\n  -H "Content-Type: application/json"${auth} \\\n  -d ${shq(json({ model: t.model, messages: [{ role: 'user', content: 'Hello!' }] }))}`;
	}
	return `curl -s ${base}/embeddings \\\n  -H "Content-Type: application/json"${auth} \\\n  -d ${shq(json({ model: t.model, input: ['The first sentence', 'Another one'] }))}`;
}

export function pythonSnippet(t: SnippetTarget): string {
	const base = t.baseUrl.replace(/\/+$/, '');
	if (t.jobType === 'classifier') {
		return [
			...(t.keyEnv ? ['import os', ''] : []),
			'import httpx',
			'',
			`response = httpx.post(`,
			`    ${pyq(base + '/classify')},`,
			`    json={"model": ${pyq(t.model)}, "input": ["This product works great", "Terrible support"]},`,
			...(t.keyEnv ? [`    headers={"Authorization": f"Bearer {os.environ[${pyq(t.keyEnv)}]}"},`] : []),
			')',
			'response.raise_for_status()',
			'print(response.json())'
		].join('\n');
	}
	const key = t.keyEnv ? `os.environ[${pyq(t.keyEnv)}]` : '"not-needed"';
	const head = [
		...(t.keyEnv ? ['import os', ''] : []),
		'from openai import OpenAI',
		'',
		`client = OpenAI(base_url=${pyq(base)}, api_key=${key})`
	];
	if (t.jobType === 'llm_lora') {
		return [
			...head,
			'reply = client.chat.completions.create(',
			`    model=${pyq(t.model)},`,
			'    messages=[{"role": "user", "content": "Hello!"}],',
			')',
			'print(reply.choices[0].message.content)'
		].join('\n');
	}
	return [
		...head,
		'result = client.embeddings.create(',
		`    model=${pyq(t.model)},`,
		'    input=["The first sentence", "Another one"],',
		')',
		'print(len(result.data[0].embedding))'
	].join('\n');
}
