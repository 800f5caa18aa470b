// Training files the browser tests upload: a valid one per job type, and one broken on line 3.

const SUBJECTS = [
	'The invoice',
	'Our support team',
	'The new release',
	'This laptop',
	'The delivery',
	'A customer',
	'The update',
	'The dashboard'
];
const VERBS = [
	'arrived late',
	'works well',
	'crashed twice',
	'was refunded',
	'looks great',
	'needs a fix',
	'was praised',
	'got delayed'
];
const TAILS = [
	'yesterday.',
	'this morning.',
	'after the update.',
	'in March.',
	'for the third time.',
	'without any notice.'
];

function sentence(i) {
	return `${SUBJECTS[i % SUBJECTS.length]} ${VERBS[(i * 3) % VERBS.length]} ${TAILS[(i * 5) % TAILS.length]} (#${i})`;
}

const csvField = (s) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

export function goodFile(jobType, rows = 240) {
	if (jobType === 'classifier') {
		const lines = ['text,label'];
		for (let i = 0; i < rows; i++) lines.push(`${csvField(sentence(i))},${i % 2 ? 'positive' : 'negative'}`);
		return { name: 'train-good.csv', mimeType: 'text/csv', buffer: Buffer.from(lines.join('\n') + '\n') };
	}
	if (jobType === 'llm_lora') {
		const lines = [];
		for (let i = 0; i < rows; i++)
			lines.push(
				JSON.stringify({ instruction: 'Summarise the note.', input: sentence(i), output: sentence(i + 1) })
			);
		return {
			name: 'train-good.jsonl',
			mimeType: 'application/jsonl',
			buffer: Buffer.from(lines.join('\n') + '\n')
		};
	}
	const lines = ['text'];
	for (let i = 0; i < rows; i++) lines.push(csvField(sentence(i)));
	return { name: 'train-good.csv', mimeType: 'text/csv', buffer: Buffer.from(lines.join('\n') + '\n') };
}

/** A file whose line 3 (counting the header as line 1) is wrong for the job type. */
export function badFile(jobType, rows = 240) {
	const good = goodFile(jobType, rows).buffer.toString('utf8').split('\n');
	if (jobType === 'llm_lora') good[2] = '{"instruction": "Summarise the note.", "output": ';
	else if (jobType === 'classifier') good[2] = 'a row without its label';
	else good[2] = 'a row,with an extra column';
	const name = jobType === 'llm_lora' ? 'train-bad.jsonl' : 'train-bad.csv';
	return {
		name,
		mimeType: jobType === 'llm_lora' ? 'application/jsonl' : 'text/csv',
		buffer: Buffer.from(good.join('\n'))
	};
}
