// The output model name, checked exactly as job-api checks it (service_layer/jobs.py,
// validate_output_model, and FinetuneJobCreate's length limits) so the form says what the server
// would refuse before anything is sent.

// Each part: alphanumerics plus '-', '_' and '.', not starting or ending with '-' or '.', no '--'
// or '..' (the whole name is at most 200 characters, as job-api checks it).
const HUB_PART = /^(?!.*(--|\.\.))[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;

export const OUTPUT_MODEL_RULE =
	"owner/name: letters, digits, '-', '_' and '.', no '--' or '..', at most 200 characters.";

/** The problem with an output model name, or null when job-api would accept it. */
export function outputModelProblem(value: string): string | null {
	if (value.length === 0) return 'Name the model you will get, as owner/name.';
	if (value.length < 3) return 'The name is too short (at least 3 characters).';
	if (value.length > 200) return 'The name is too long (at most 200 characters).';
	const parts = value.split('/');
	if (parts.length !== 2) return `Use exactly one '/': ${OUTPUT_MODEL_RULE}`;
	const [owner = '', name = ''] = parts;
	for (const [label, part] of [
		['owner', owner],
		['name', name]
	] as const) {
		if (!part) return `The ${label} part is empty: ${OUTPUT_MODEL_RULE}`;
		if (!HUB_PART.test(part)) return `The ${label} part is not allowed: ${OUTPUT_MODEL_RULE}`;
	}
	if (name.endsWith('.git')) return "The name may not end in '.git'.";
	return null;
}

/** The problem with an output name made of a chosen namespace and a typed name, or null. */
export function outputNameProblem(owner: string, name: string): string | null {
	if (!owner) return 'Choose the namespace the model is named in.';
	if (name.length === 0) return 'Name the model you will get.';
	if (name.includes('/')) return "The name cannot hold a '/': the namespace is chosen beside it.";
	return outputModelProblem(`${owner}/${name}`);
}

const slug = (s: string) =>
	s
		.toLowerCase()
		.replace(/[^a-z0-9._-]+/g, '-')
		.replace(/[-.]{2,}/g, '-')
		.replace(/^[-._]+|[-._]+$/g, '')
		.slice(0, 60);

/** A suggestion for the name part: a slug of the base model and the job type. */
export function suggestModelName(baseModel: string, jobType: string): string {
	const base = slug(baseModel.split('/').pop() ?? baseModel) || 'model';
	return `${base}-${slug(jobType) || 'ft'}`;
}

/** A suggestion for the output name: the user's id and a slug of the base model and type. */
export function suggestOutputModel(user: string | null, baseModel: string, jobType: string): string {
	const owner = slug(user ?? '') || 'me';
	return `${owner}/${suggestModelName(baseModel, jobType)}`.slice(0, 200);
}
