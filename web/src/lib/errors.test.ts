import { describe, expect, it } from 'vitest';
import { explain, failureOf } from './errors';

const problem = (status: number, body: object, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/problem+json', ...headers } });

describe('failures people can understand', () => {
  it('429 tells the wait', async () => {
    const f = await failureOf(problem(429, { code: 'rate_limited' }, { 'retry-after': '17' }));
    expect(explain(f)).toEqual({ key: 'err.rateLimited', vars: { n: 17 } });
  });
  it('503, wrong password, taken email, a bad field', async () => {
    expect(explain(await failureOf(problem(503, { code: 'unavailable' }))).key).toBe('err.unavailable');
    expect(explain(await failureOf(problem(401, { code: 'invalid_credentials' }))).key).toBe('err.credentials');
    expect(explain(await failureOf(problem(401, { code: 'invalid_token' }))).key).toBe('err.sessionEnded');
    expect(explain(await failureOf(problem(409, { code: 'email_taken' }))).key).toBe('err.emailTaken');
    expect(explain(await failureOf(problem(422, { code: 'validation', field: 'email' })))).toEqual({
      key: 'err.validation',
      vars: { field: 'email' },
    });
  });
  it('each named conflict has its own words; an unnamed one says it changed meanwhile', async () => {
    const conflict = async (code?: string) => explain(await failureOf(problem(409, code ? { code } : {}))).key;
    expect(await conflict('generation_in_progress')).toBe('err.stillWriting');
    expect(await conflict('nothing_to_continue')).toBe('err.nothingToContinue');
    expect(await conflict('too_many_characters')).toBe('err.tooManyCharacters');
    expect(await conflict('characters_message')).toBe('err.charactersMessage');
    expect(await conflict('a_future_conflict')).toBe('err.conflict');
    expect(await conflict()).toBe('err.conflict');
  });
  it('a body that is not a problem still explains itself', async () => {
    expect(explain(await failureOf(new Response('<html>', { status: 500 }))).key).toBe('err.server');
  });
});
