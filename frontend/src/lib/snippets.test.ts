import { describe, expect, it } from 'vitest';
import {
	chatSnippets,
	classifierSnippets,
	embeddingSnippets,
	KEY_ENV,
	snippetBaseUrl,
	type Snippets
} from './snippets';

const target = { model: 'alice/support-emb', baseUrl: 'http://localhost:8000/v1/' };
const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor as new (...args: string[]) => unknown;

/** Parses the JavaScript as an async function body (top-level await), without running it. */
const parsesAsJs = (code: string) => () => new AsyncFunction('process', code);

/** The JSON a curl snippet sends (its -d '...' word, unquoted as the shell would). */
function curlBody(curl: string): unknown {
	const m = /-d '((?:[^']|'\\'')*)'$/.exec(curl);
	if (!m) throw new Error(`no body in ${curl}`);
	return JSON.parse((m[1] ?? '').replace(/'\\''/g, "'"));
}

function all(s: Snippets): string[] {
	return [s.python, s.curl, s.javascript];
}

describe('embedding snippets', () => {
	const s = embeddingSnippets(target, ['A cat sat', 'A kitten sat']);

	it('call /v1/embeddings at the gateway with the pair the playground sends', () => {
		expect(s.python).toContain(
			'OpenAI(base_url="http://localhost:8000/v1", api_key=os.environ["FTD_API_KEY"])'
		);
		expect(s.python).toContain(
			'client.embeddings.create(model="alice/support-emb", input=["A cat sat", "A kitten sat"])'
		);
		expect(s.curl).toContain("'http://localhost:8000/v1/embeddings'");
		expect(curlBody(s.curl)).toEqual({
			model: 'alice/support-emb',
			input: ['A cat sat', 'A kitten sat'],
			encoding_format: 'float'
		});
		expect(s.javascript).toContain('fetch("http://localhost:8000/v1/embeddings"');
		expect(s.python).toContain('cosine similarity');
		expect(s.javascript).toContain('cosine similarity');
	});

	it('are valid JavaScript', () => {
		expect(parsesAsJs(s.javascript)).not.toThrow();
	});
});

describe('classifier snippets', () => {
	const s = classifierSnippets(target, ['Great product']);
	it('post to /v1/classify, from Python through the openai client', () => {
		expect(s.python).toContain('client.post(');
		expect(s.python).toContain('"/classify"');
		expect(s.python).toContain('cast_to=object');
		expect(curlBody(s.curl)).toEqual({ model: 'alice/support-emb', input: ['Great product'] });
		expect(s.curl).toContain('/v1/classify');
		expect(s.javascript).toContain('/v1/classify');
		expect(parsesAsJs(s.javascript)).not.toThrow();
	});
});

describe('chat snippets', () => {
	const s = chatSnippets(target, [
		{ role: 'system', content: 'Be brief.' },
		{ role: 'user', content: 'Hi!' }
	]);
	it('stream /v1/chat/completions with the conversation', () => {
		expect(s.python).toContain('client.chat.completions.create(');
		expect(s.python).toContain('stream=True');
		expect(s.python).toContain('{"role": "system", "content": "Be brief."},');
		expect(s.curl).toMatch(/^curl -sSN /);
		expect(curlBody(s.curl)).toEqual({
			model: 'alice/support-emb',
			messages: [
				{ role: 'system', content: 'Be brief.' },
				{ role: 'user', content: 'Hi!' }
			],
			max_tokens: 128,
			stream: true
		});
		expect(s.javascript).toContain('data: [DONE]');
		expect(parsesAsJs(s.javascript)).not.toThrow();
	});
});

describe('every snippet', () => {
	const tricky = {
		model: `o'brien/m"x`,
		baseUrl: 'http://h:1/v1'
	};
	const kinds = [
		embeddingSnippets(tricky, [`it's "quoted"`, 'back\\slash $HOME `cmd`']),
		classifierSnippets(tricky, [`it's {braces} "quoted"`]),
		chatSnippets(tricky, [{ role: 'user', content: `it's "quoted" {x}\nnew line` }])
	];

	it('reads the key from the environment, never a literal', () => {
		for (const s of kinds) {
			expect(s.python).toContain(`os.environ["${KEY_ENV}"]`);
			expect(s.curl).toContain(`-H "Authorization: Bearer $${KEY_ENV}"`);
			expect(s.javascript).toContain(`process.env.${KEY_ENV}`);
			for (const code of all(s)) expect(code).not.toMatch(/ftdk_/);
		}
	});

	it('quotes the model and the texts safely for the shell, Python and JavaScript', () => {
		for (const s of kinds) {
			// The shell sees one single-quoted word: every quote inside is closed, escaped, reopened.
			const body = curlBody(s.curl) as { model: string };
			expect(body.model).toBe(`o'brien/m"x`);
			expect(parsesAsJs(s.javascript)).not.toThrow();
			// No f-strings: a Python f-string with nested quotes is a SyntaxError before 3.12.
			expect(s.python).not.toMatch(/\bf"[^"\n]*\{[^}\n]*"/);
			expect(s.python).toContain('"o\'brien/m\\"x"');
		}
		expect(curlBody(kinds[0]!.curl)).toMatchObject({ input: [`it's "quoted"`, 'back\\slash $HOME `cmd`'] });
	});

	it('accept a custom variable name, and refuse one the shell would not read', () => {
		const s = embeddingSnippets({ ...target, keyEnv: 'MY_KEY' }, ['a', 'b']);
		expect(s.curl).toContain('$MY_KEY');
		expect(() => embeddingSnippets({ ...target, keyEnv: 'X; rm -rf /' }, ['a', 'b'])).toThrow();
	});
});

describe('snippetBaseUrl', () => {
	it("is the page's own gateway, or the development gateway behind the dev UI server", () => {
		expect(snippetBaseUrl('https://ftd.example.com')).toBe('https://ftd.example.com/v1');
		expect(snippetBaseUrl('http://127.0.0.1:41234')).toBe('http://127.0.0.1:41234/v1');
		expect(snippetBaseUrl('http://127.0.0.1:8004')).toBe('http://localhost:8000/v1');
		expect(snippetBaseUrl('not a url')).toBe('http://localhost:8000/v1');
	});
});
