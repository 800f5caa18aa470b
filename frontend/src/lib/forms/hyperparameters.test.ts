import { describe, expect, it } from 'vitest';
import { hyperparameterFields, hyperparameterOverrides, parseHyperparameter } from './hyperparameters';

describe('hyperparameterFields', () => {
	it('lists the contract fields of each job type, without job_type', () => {
		const names = hyperparameterFields('embedding').map((f) => f.name);
		expect(names).toContain('epochs');
		expect(names).toContain('learning_rate');
		expect(names).not.toContain('job_type');
		const lora = hyperparameterFields('llm_lora').map((f) => f.name);
		expect(lora).toEqual(
			expect.arrayContaining(['lora_r', 'lora_alpha', 'lora_dropout', 'gradient_accumulation_steps'])
		);
		expect(names).not.toContain('lora_r');
	});

	it("takes the server's defaults over the schema's", () => {
		const epochs = hyperparameterFields('classifier', { epochs: 7 }).find((f) => f.name === 'epochs');
		expect(epochs?.default).toBe(7);
		expect(epochs?.kind).toBe('integer');
		expect(epochs?.minimum).toBe(1);
	});
});

describe('parseHyperparameter', () => {
	const fields = hyperparameterFields('embedding');
	const field = (name: string) => fields.find((f) => f.name === name)!;

	it('accepts values in range', () => {
		expect(parseHyperparameter(field('epochs'), '5')).toEqual({ value: 5, error: null });
		expect(parseHyperparameter(field('learning_rate'), '3e-5')).toEqual({ value: 3e-5, error: null });
	});

	it('refuses what the server would refuse', () => {
		expect(parseHyperparameter(field('epochs'), '2.5').error).toMatch(/whole number/);
		expect(parseHyperparameter(field('epochs'), '0').error).toMatch(/at least 1/);
		expect(parseHyperparameter(field('epochs'), '101').error).toMatch(/at most 100/);
		expect(parseHyperparameter(field('learning_rate'), '0').error).toMatch(/greater than 0/);
		expect(parseHyperparameter(field('eval_split'), 'abc').error).toMatch(/number/);
		expect(parseHyperparameter(field('eval_split'), ' ').error).toMatch(/required/);
	});
});

describe('hyperparameterOverrides', () => {
	it('sends only what differs from the defaults, and collects errors', () => {
		const fields = hyperparameterFields('embedding', { epochs: 3, batch_size: 16 });
		const { overrides, errors } = hyperparameterOverrides(fields, {
			epochs: '3',
			batch_size: '32',
			seed: '-1'
		});
		expect(overrides).toEqual({ batch_size: 32 });
		expect(Object.keys(errors)).toEqual(['seed']);
	});
});
