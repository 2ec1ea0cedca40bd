import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

const fetchFile = vi.fn();
vi.mock('./api.svelte', () => ({ fetchFile: (path: string) => fetchFile(path) }));

const { avatars, forgetAvatar, forgetAvatars, loadAvatar } = await import('./avatars.svelte');

const PATH = '/api/v1/characters/lea-3f9a1c2b7d/avatar';
let made = 0;

beforeEach(() => {
  made = 0;
  vi.spyOn(URL, 'createObjectURL').mockImplementation(() => `blob:test/${++made}`);
  vi.spyOn(URL, 'revokeObjectURL').mockImplementation(() => {});
  fetchFile.mockReset();
});

afterEach(() => {
  forgetAvatars();
  vi.restoreAllMocks();
});

describe('avatars', () => {
  it('fetches each one once, however many places ask', async () => {
    fetchFile.mockResolvedValue({ blob: new Blob(['png']), name: null });
    await Promise.all([loadAvatar(PATH), loadAvatar(PATH)]);
    await loadAvatar(PATH);
    expect(fetchFile).toHaveBeenCalledTimes(1);
    expect(avatars.shown[PATH]).toBe('blob:test/1');
  });

  it('fetches again once forgotten (replaced), and lets the old image go', async () => {
    fetchFile.mockResolvedValue({ blob: new Blob(['png']), name: null });
    await loadAvatar(PATH);
    forgetAvatar(PATH);
    expect(URL.revokeObjectURL).toHaveBeenCalledWith('blob:test/1');
    expect(avatars.shown[PATH]).toBeUndefined();
    await loadAvatar(PATH);
    expect(fetchFile).toHaveBeenCalledTimes(2);
    expect(avatars.shown[PATH]).toBe('blob:test/2');
  });

  it('does not show an image forgotten while it was on its way', async () => {
    let answer: (v: unknown) => void = () => {};
    fetchFile.mockReturnValue(new Promise((r) => (answer = r)));
    const load = loadAvatar(PATH);
    forgetAvatars();
    answer({ blob: new Blob(['png']), name: null });
    await load;
    expect(avatars.shown[PATH]).toBeUndefined();
  });

  it('asks again after a failure', async () => {
    fetchFile.mockRejectedValueOnce(new Error('404'));
    await loadAvatar(PATH);
    expect(avatars.shown[PATH]).toBeUndefined();
    fetchFile.mockResolvedValue({ blob: new Blob(['png']), name: null });
    await loadAvatar(PATH);
    expect(avatars.shown[PATH]).toBe('blob:test/1');
  });
});
