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
  it('a body that is not a problem still explains itself', async () => {
    expect(explain(await failureOf(new Response('<html>', { status: 500 }))).key).toBe('err.server');
  });
});
