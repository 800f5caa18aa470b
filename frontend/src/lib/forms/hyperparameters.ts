// The advanced section of the create form: one field per hyperparameter of the job type, with the
// ranges and descriptions of the committed contract (docs/contracts/hyperparameters.schema.json,
// generated from libs/contracts) and the defaults job-api answers at /base-models.
import schema from '../../../../docs/contracts/hyperparameters.schema.json';
import type { JobType } from '$lib/api/types';

export interface HyperparameterField {
	name: string;
	title: string;
	description: string;
	kind: 'integer' | 'number';
	minimum: number | null;
	maximum: number | null;
	exclusiveMinimum: number | null;
	default: number;
}

interface PropertySchema {
	type?: string;
	title?: string;
	description?: string;
	minimum?: number;
	maximum?: number;
	exclusiveMinimum?: number;
	default?: unknown;
	const?: unknown;
}

interface DefSchema {
	properties: Record<string, PropertySchema>;
}

const defs = (schema as unknown as { $defs: Record<string, DefSchema> }).$defs;

function defFor(jobType: JobType): DefSchema | null {
	return Object.values(defs).find((d) => d.properties.job_type?.const === jobType) ?? null;
}

/** Fields in a stable, readable order: the schema's, with `job_type` left out. */
export function hyperparameterFields(
	jobType: JobType,
	defaults: Record<string, unknown> = {}
): HyperparameterField[] {
	const def = defFor(jobType);
	if (!def) return [];
	return Object.entries(def.properties)
		.filter(([name, p]) => name !== 'job_type' && (p.type === 'integer' || p.type === 'number'))
		.map(([name, p]) => {
			const d = defaults[name];
			return {
				name,
				title: p.title ?? name,
				description: p.description ?? '',
				kind: p.type as 'integer' | 'number',
				minimum: p.minimum ?? null,
				maximum: p.maximum ?? null,
				exclusiveMinimum: p.exclusiveMinimum ?? null,
				default: typeof d === 'number' ? d : typeof p.default === 'number' ? p.default : 0
			};
		});
}

/** Checks one typed-in value against its field; the number, or why it is refused. */
export function parseHyperparameter(
	field: HyperparameterField,
	raw: string
): { value: number; error: null } | { value: null; error: string } {
	const text = raw.trim();
	if (text === '') return { value: null, error: `${field.title} is required.` };
	const value = Number(text);
	if (!Number.isFinite(value)) return { value: null, error: `${field.title} must be a number.` };
	if (field.kind === 'integer' && !Number.isInteger(value)) {
		return { value: null, error: `${field.title} must be a whole number.` };
	}
	if (field.minimum !== null && value < field.minimum) {
		return { value: null, error: `${field.title} must be at least ${field.minimum}.` };
	}
	if (field.exclusiveMinimum !== null && value <= field.exclusiveMinimum) {
		return { value: null, error: `${field.title} must be greater than ${field.exclusiveMinimum}.` };
	}
	if (field.maximum !== null && value > field.maximum) {
		return { value: null, error: `${field.title} must be at most ${field.maximum}.` };
	}
	return { value, error: null };
}

/** The overrides to send: only values that differ from the defaults. */
export function hyperparameterOverrides(
	fields: HyperparameterField[],
	values: Record<string, string>
): { overrides: Record<string, number>; errors: Record<string, string> } {
	const overrides: Record<string, number> = {};
	const errors: Record<string, string> = {};
	for (const field of fields) {
		const raw = values[field.name];
		if (raw === undefined) continue;
		const parsed = parseHyperparameter(field, raw);
		if (parsed.error !== null) errors[field.name] = parsed.error;
		else if (parsed.value !== field.default) overrides[field.name] = parsed.value;
	}
	return { overrides, errors };
}
