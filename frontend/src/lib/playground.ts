// What the playground sends per model kind, and the snippets that send the same request.
import type { JobType } from '$lib/api/types';
import {
	chatSnippets,
	classifierSnippets,
	embeddingSnippets,
	type ChatTurn,
	type SnippetTarget,
	type Snippets
} from '$lib/snippets';

/** What the playground holds for each kind (the inputs the snippets repeat). */
export interface PlaygroundInput {
	pair: [string, string];
	texts: string[];
	messages: ChatTurn[];
}

export const EXAMPLE_INPUT: PlaygroundInput = {
	pair: ['How do I reset my password?', 'I forgot my login and need a new password.'],
	texts: ['The delivery arrived two days early and works perfectly.'],
	messages: [{ role: 'user', content: 'Summarise the note: the invoice arrived late this morning.' }]
};

/** model-server's name for a registry job type (`/v1/models` answers it as `ftd_type`). */
export const SERVED_KIND: Record<JobType, string> = {
	embedding: 'embedding',
	classifier: 'classifier',
	llm_lora: 'lora'
};

/** The snippets of a model kind for the playground's current input. */
export function snippetsFor(
	jobType: JobType,
	target: SnippetTarget,
	input: PlaygroundInput = EXAMPLE_INPUT
): Snippets {
	if (jobType === 'classifier') return classifierSnippets(target, input.texts);
	if (jobType === 'llm_lora') return chatSnippets(target, input.messages);
	return embeddingSnippets(target, input.pair);
}

/** Classifier scores as bars: every label, best first, as a fraction of 1. */
export function scoreBars(scores: Record<string, number>): { label: string; score: number }[] {
	return Object.entries(scores)
		.filter(([, v]) => Number.isFinite(v))
		.map(([label, score]) => ({ label, score: Math.min(1, Math.max(0, score)) }))
		.sort((a, b) => b.score - a.score || a.label.localeCompare(b.label));
}

/** A sentence for a cosine similarity, so the number reads at a glance. */
export function similarityWords(value: number): string {
	if (value >= 0.8) return 'very similar';
	if (value >= 0.6) return 'similar';
	if (value >= 0.35) return 'somewhat related';
	return 'unrelated';
}
