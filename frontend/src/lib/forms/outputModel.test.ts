import { describe, expect, it } from 'vitest';
import cases from './output-model-cases.json';
import { outputModelProblem, outputNameProblem, suggestModelName, suggestOutputModel } from './outputModel';

describe('outputModelProblem', () => {
	// The cases are decided by job-api's own validator (scripts/output_model_cases.py).
	it.each(cases)('agrees with job-api on $name', ({ name, ok }) => {
		expect(outputModelProblem(name) === null).toBe(ok);
	});

	it('explains the rule', () => {
		expect(outputModelProblem('noslash')).toMatch(/owner\/name/);
		expect(outputModelProblem('owner/model.git')).toMatch(/\.git/);
		expect(outputModelProblem('')).toMatch(/owner\/name/);
	});
});

describe('suggestOutputModel', () => {
	it('makes a name the server accepts', () => {
		for (const [user, base, type] of [
			['alice', 'sentence-transformers/all-MiniLM-L6-v2', 'embedding'],
			['bob@example.com', 'xlm-roberta-base', 'classifier'],
			[null, 'ftd-local/tiny-llama', 'llm_lora'],
			['--', '..', '_']
		] as const) {
			const name = suggestOutputModel(user, base, type);
			expect(outputModelProblem(name), name).toBeNull();
		}
	});
});

describe('outputNameProblem', () => {
	it('checks the chosen namespace and the typed name together, as job-api does', () => {
		expect(outputNameProblem('alice', 'emb-v1')).toBeNull();
		expect(
			outputNameProblem('acme-org', suggestModelName('sentence-transformers/all-MiniLM-L6-v2', 'embedding'))
		).toBeNull();
		expect(outputNameProblem('alice', 'no space')).toMatch(/name part is not allowed/);
		expect(outputNameProblem('alice', 'model.git')).toMatch(/\.git/);
		expect(outputNameProblem('alice', 'x'.repeat(200))).toMatch(/too long/);
	});

	it('says which half is missing or wrong', () => {
		expect(outputNameProblem('', 'emb')).toMatch(/namespace/);
		expect(outputNameProblem('alice', '')).toMatch(/Name the model/);
		expect(outputNameProblem('alice', 'a/b')).toMatch(/cannot hold a '\/'/);
	});
});
