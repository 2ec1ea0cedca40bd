// Every failure a person may meet, as one value the screens can explain in their language.
import type { Key } from './i18n.svelte';

export type FailureKind =
  | 'offline'
  | 'rate_limited'
  | 'unavailable'
  | 'unauthorized'
  | 'not_found'
  | 'conflict'
  | 'validation'
  | 'server';

export class ApiFailure extends Error {
  constructor(
    readonly kind: FailureKind,
    readonly status: number,
    readonly code: string | null = null,
    /** Seconds to wait (429, 503). */
    readonly retryAfter: number | null = null,
    /** The field a 422 is about. */
    readonly field: string | null = null,
  ) {
    super(`${kind} ${status}${code ? ` ${code}` : ''}`);
  }
}

interface Problem {
  code?: string;
  detail?: string;
  retry_after?: number;
  errors?: { field?: string }[];
  field?: string;
}

/** The failure a response stands for (call it only for a response that is not ok). */
export async function failureOf(res: Response): Promise<ApiFailure> {
  let problem: Problem = {};
  try {
    problem = (await res.clone().json()) as Problem;
  } catch {
    /* not a problem document */
  }
  const header = Number(res.headers.get('retry-after'));
  const retryAfter = Number.isFinite(header) && header > 0 ? header : (problem.retry_after ?? null);
  const code = problem.code ?? null;
  const field = problem.errors?.[0]?.field ?? problem.field ?? null;
  switch (res.status) {
    case 401:
      return new ApiFailure('unauthorized', 401, code);
    case 404:
      return new ApiFailure('not_found', 404, code);
    case 409:
      return new ApiFailure('conflict', 409, code);
    case 400:
    case 422:
      return new ApiFailure('validation', res.status, code, null, field);
    case 429:
      return new ApiFailure('rate_limited', 429, code, retryAfter ?? 1);
    case 502:
    case 503:
    case 504:
      return new ApiFailure('unavailable', res.status, code, retryAfter);
    default:
      return new ApiFailure('server', res.status, code);
  }
}

/** Each conflict the API names (a 409's `code`), as a person would be told it. */
const CONFLICTS: Record<string, Key> = {
  email_taken: 'err.emailTaken',
  generation_in_progress: 'err.stillWriting',
  nothing_to_answer: 'err.nothingToAnswer',
  nothing_to_continue: 'err.nothingToContinue',
  too_many_characters: 'err.tooManyCharacters',
  too_many_photo_jobs: 'err.tooManyPhotos',
  characters_message: 'err.charactersMessage',
};

/** What to tell a person about `e` (an i18n key and its values). */
export function explain(e: unknown): { key: Key; vars?: Record<string, string | number> } {
  if (!(e instanceof ApiFailure)) {
    return { key: navigatorOnline() ? 'err.server' : 'err.offline' };
  }
  switch (e.kind) {
    case 'offline':
      return { key: 'err.offline' };
    case 'rate_limited':
      return { key: 'err.rateLimited', vars: { n: e.retryAfter ?? 1 } };
    case 'unavailable':
      return { key: 'err.unavailable' };
    case 'unauthorized':
      return e.code === 'invalid_credentials' ? { key: 'err.credentials' } : { key: 'err.sessionEnded' };
    case 'not_found':
      return { key: 'err.notFound' };
    case 'conflict':
      return { key: CONFLICTS[e.code ?? ''] ?? 'err.conflict' };
    case 'validation':
      return { key: 'err.validation', vars: { field: e.field ?? '?' } };
    default:
      return { key: 'err.server' };
  }
}

function navigatorOnline(): boolean {
  return typeof navigator === 'undefined' || navigator.onLine !== false;
}
