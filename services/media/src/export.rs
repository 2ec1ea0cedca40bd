//! Everything an account holds, as one zip archive: JSON for machines, Markdown transcripts
//! for people, and the photos themselves. The archive is written while it streams out: each
//! piece is read a page at a time, compressed into a small buffer and handed to the response
//! through a bounded channel, so memory stays flat (a page of messages, one image, and the
//! channel's few chunks) however large the account, and a slow client slows the reading down
//! instead of piling it up.
//!
//! The archive is made of [`SECTIONS`]; a new kind of data (the characters a user makes, say)
//! is one more `async fn` and one more line there.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use db_core::models::{MatchSummary, Memory, Photo, Profile, Sender};
use futures_util::future::LocalBoxFuture;
use serde::Serialize;
use service_kit::Kit;
use tokio::sync::mpsc;
use uuid::Uuid;
use zip::write::{SimpleFileOptions, StreamWriter};
use zip::{CompressionMethod, ZipWriter};

use crate::jobs::Media;

/// What the channel carries to the response.
pub type Chunk = Result<Bytes, std::io::Error>;
/// Chunks in flight between the writer and the client.
pub const CHANNEL_CHUNKS: usize = 8;
/// The buffer is handed on once it holds this much.
const CHUNK_BYTES: usize = 64 * 1024;
/// Rows read at a time.
const PAGE: i64 = 500;

/// One part of the archive.
pub struct Section {
    pub name: &'static str,
    /// What the part holds, for the archive's README.
    pub about: &'static str,
    /// Writes its files; returns a line of counts for the README.
    pub write: for<'a> fn(&'a Cx, &'a mut Archive) -> LocalBoxFuture<'a, anyhow::Result<String>>,
}

/// The parts of the archive, in order.
pub const SECTIONS: [Section; 5] = [
    Section {
        name: "profile",
        about: "`profile.json`: the account (email, display name, XP, rank, sign-up date)",
        write: |cx, a| Box::pin(profile(cx, a)),
    },
    Section {
        name: "matches",
        about: "`matches.json`: the characters you matched with, affection and dates",
        write: |cx, a| Box::pin(matches(cx, a)),
    },
    Section {
        name: "conversations",
        about: "`conversations/<character>.json` (every message) and `conversations/<character>.md` (a transcript to read)",
        write: |cx, a| Box::pin(conversations(cx, a)),
    },
    Section {
        name: "memories",
        about: "`memories.json`: what each character remembers about you",
        write: |cx, a| Box::pin(memories(cx, a)),
    },
    Section {
        name: "photos",
        about: "`photos.json` and `photos/<character>/<id>.<ext>`: every photo you received, as sent",
        write: |cx, a| Box::pin(photos(cx, a)),
    },
];

/// What every section may read: the account, its matches and its photos' metadata (loaded
/// once: transcripts link the photos their messages carry).
pub struct Cx {
    pub kit: Kit,
    pub media: Media,
    pub user: Uuid,
    pub profile: Profile,
    pub matches: Vec<MatchSummary>,
    pub photos: Vec<Photo>,
    pub started: DateTime<Utc>,
}

impl Cx {
    /// Loads what the sections share; `None` if the account is gone.
    pub async fn load(kit: Kit, media: Media, user: Uuid) -> anyhow::Result<Option<Self>> {
        let Some(profile) = kit.store.users().profile(user).await? else {
            return Ok(None);
        };
        let matches = kit.store.matches().list(user).await?;
        let mut photos = Vec::new();
        for m in &matches {
            let mut before = None;
            loop {
                let page = kit
                    .store
                    .photos()
                    .page(user, &m.character_id, before, 100)
                    .await?;
                photos.extend(page.items);
                match page.next {
                    Some(next) => before = Some(next),
                    None => break,
                }
            }
        }
        Ok(Some(Self {
            kit,
            media,
            user,
            profile,
            matches,
            photos,
            started: Utc::now(),
        }))
    }

    fn photo_paths(&self) -> HashMap<i64, String> {
        self.photos.iter().map(|p| (p.id, photo_path(p))).collect()
    }
}

fn photo_path(p: &Photo) -> String {
    let ext = match p.content_type.as_str() {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        _ => "bin",
    };
    format!("photos/{}/{}.{ext}", p.character_id, p.id)
}

/// `n` and the noun, singular or plural.
fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn readable(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The bytes the zip writer has produced and the response has not taken yet.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The zip being written, and where its bytes go.
pub struct Archive {
    zip: ZipWriter<StreamWriter<Sink>>,
    sink: Sink,
    out: mpsc::Sender<Chunk>,
    /// Bytes handed to the client so far.
    pub sent: u64,
}

impl Archive {
    pub fn new(out: mpsc::Sender<Chunk>) -> Self {
        let sink = Sink::default();
        Self {
            zip: ZipWriter::new_stream(sink.clone()),
            sink,
            out,
            sent: 0,
        }
    }

    /// Starts a file; text is deflated, images (already compressed) stored as they are.
    pub fn start(&mut self, path: &str, compress: bool) -> anyhow::Result<()> {
        let options = SimpleFileOptions::default()
            .compression_method(if compress {
                CompressionMethod::Deflated
            } else {
                CompressionMethod::Stored
            })
            .unix_permissions(0o644);
        self.zip.start_file(path, options)?;
        Ok(())
    }

    /// Appends to the current file, handing full chunks on.
    pub async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        for piece in bytes.chunks(CHUNK_BYTES) {
            self.zip.write_all(piece)?;
            self.hand_on(CHUNK_BYTES).await?;
        }
        Ok(())
    }

    /// A whole file at once.
    pub async fn file(&mut self, path: &str, compress: bool, bytes: &[u8]) -> anyhow::Result<()> {
        self.start(path, compress)?;
        self.write(bytes).await
    }

    /// A JSON document as one file.
    pub async fn json(&mut self, path: &str, value: &impl Serialize) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec_pretty(value)?;
        self.file(path, true, &bytes).await
    }

    /// Sends what the buffer holds once it holds at least `at_least` bytes. Waits while the
    /// channel is full: the client sets the pace.
    async fn hand_on(&mut self, at_least: usize) -> anyhow::Result<()> {
        let chunk = {
            let mut buf = self
                .sink
                .0
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?;
            if buf.is_empty() || buf.len() < at_least {
                return Ok(());
            }
            std::mem::take(&mut *buf)
        };
        self.sent += chunk.len() as u64;
        self.out
            .send(Ok(Bytes::from(chunk)))
            .await
            .map_err(|_| anyhow::anyhow!("the client went away"))
    }

    /// Writes the central directory and sends the rest.
    pub async fn finish(self) -> anyhow::Result<u64> {
        let Archive {
            zip,
            sink,
            out,
            mut sent,
        } = self;
        zip.finish()?;
        let rest = std::mem::take(&mut *sink.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
        if !rest.is_empty() {
            sent += rest.len() as u64;
            out.send(Ok(Bytes::from(rest)))
                .await
                .map_err(|_| anyhow::anyhow!("the client went away"))?;
        }
        Ok(sent)
    }
}

/// Writes every section, then the README; the archive's size.
pub async fn write_all(cx: &Cx, mut archive: Archive) -> anyhow::Result<u64> {
    let mut lines = Vec::new();
    for section in &SECTIONS {
        let summary = (section.write)(cx, &mut archive).await?;
        lines.push(format!(
            "- **{}** — {}. {summary}",
            section.name, section.about
        ));
    }
    let readme = format!(
        "# Your Dream data\n\n\
         Everything Dream holds about the account **{}** ({}), exported on {}.\n\n\
         {}\n\n\
         Times are UTC. The JSON files are for programs; the Markdown transcripts are for reading \
         (any Markdown viewer shows the photos inline).\n",
        cx.profile.display_name,
        cx.profile.email,
        readable(cx.started),
        lines.join("\n")
    );
    archive.file("README.md", true, readme.as_bytes()).await?;
    archive.finish().await
}

#[derive(Serialize)]
struct ProfileFile<'a> {
    id: Uuid,
    email: &'a str,
    display_name: &'a str,
    xp: i64,
    rank: Option<i64>,
    created_at: String,
    exported_at: String,
}

async fn profile(cx: &Cx, a: &mut Archive) -> anyhow::Result<String> {
    let rank = cx
        .kit
        .store
        .leaderboard()
        .rank(cx.user)
        .await?
        .map(|r| r.rank);
    let p = &cx.profile;
    a.json(
        "profile.json",
        &ProfileFile {
            id: p.id,
            email: &p.email,
            display_name: &p.display_name,
            xp: p.xp,
            rank,
            created_at: utc(p.created_at),
            exported_at: utc(cx.started),
        },
    )
    .await?;
    Ok(format!("{} XP", p.xp))
}

#[derive(Serialize)]
struct MatchEntry<'a> {
    character_id: &'a str,
    character_name: &'a str,
    affection: i32,
    matched_at: String,
    last_message_at: Option<String>,
}

async fn matches(cx: &Cx, a: &mut Archive) -> anyhow::Result<String> {
    let entries: Vec<MatchEntry<'_>> = cx
        .matches
        .iter()
        .map(|m| MatchEntry {
            character_id: &m.character_id,
            character_name: &m.character_name,
            affection: m.affection,
            matched_at: utc(m.created_at),
            last_message_at: m.last_message_at.map(utc),
        })
        .collect();
    a.json("matches.json", &entries).await?;
    Ok(count(entries.len() as u64, "match", "matches"))
}

#[derive(Serialize)]
struct MessageEntry<'a> {
    id: i64,
    sender: Sender,
    content: &'a str,
    created_at: String,
    is_read: bool,
    /// The photo the message carries, as a path in this archive.
    photo: Option<&'a str>,
}

/// Each conversation twice, page by page: as JSON, then as a transcript.
async fn conversations(cx: &Cx, a: &mut Archive) -> anyhow::Result<String> {
    let paths = cx.photo_paths();
    let mut total = 0u64;
    for m in &cx.matches {
        let c = &m.character_id;
        a.start(&format!("conversations/{c}.json"), true)?;
        a.write(b"[").await?;
        let mut first = true;
        let mut after = None;
        loop {
            let page = cx
                .kit
                .store
                .account()
                .messages_after(cx.user, c, after, PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some((last.created_at, last.id));
            let mut buf = Vec::new();
            for msg in &page {
                buf.extend_from_slice(if first { b"\n  " } else { b",\n  " });
                first = false;
                serde_json::to_writer(
                    &mut buf,
                    &MessageEntry {
                        id: msg.id,
                        sender: msg.sender,
                        content: &msg.content,
                        created_at: utc(msg.created_at),
                        is_read: msg.is_read,
                        photo: msg
                            .photo_id
                            .and_then(|id| paths.get(&id))
                            .map(String::as_str),
                    },
                )?;
            }
            total += page.len() as u64;
            a.write(&buf).await?;
            if (page.len() as i64) < PAGE {
                break;
            }
        }
        a.write(b"\n]\n").await?;

        a.start(&format!("conversations/{c}.md"), true)?;
        let head = format!(
            "# {} & {}\n\nMatched on {} · affection {}\n\n---\n\n",
            cx.profile.display_name,
            m.character_name,
            readable(m.created_at),
            m.affection
        );
        a.write(head.as_bytes()).await?;
        let mut after = None;
        loop {
            let page = cx
                .kit
                .store
                .account()
                .messages_after(cx.user, c, after, PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some((last.created_at, last.id));
            let mut text = String::new();
            for msg in &page {
                let who = match msg.sender {
                    Sender::User => cx.profile.display_name.as_str(),
                    Sender::Character => m.character_name.as_str(),
                    Sender::System => "Dream",
                };
                text.push_str(&format!(
                    "**{who}** · {}\n\n{}\n\n",
                    readable(msg.created_at),
                    msg.content
                ));
                if let Some(path) = msg.photo_id.and_then(|id| paths.get(&id)) {
                    text.push_str(&format!("![photo](../{path})\n\n"));
                }
            }
            a.write(text.as_bytes()).await?;
            if (page.len() as i64) < PAGE {
                break;
            }
        }
    }
    Ok(format!(
        "{} in {}",
        count(total, "message", "messages"),
        count(cx.matches.len() as u64, "conversation", "conversations")
    ))
}

#[derive(Serialize)]
struct MemoryEntry<'a> {
    character_id: &'a str,
    content: &'a str,
    /// The message it was drawn from, if any.
    source_message_id: Option<i64>,
    created_at: String,
    updated_at: String,
}

async fn memories(cx: &Cx, a: &mut Archive) -> anyhow::Result<String> {
    a.start("memories.json", true)?;
    a.write(b"[").await?;
    let mut n = 0u64;
    for m in &cx.matches {
        let mut before = None;
        loop {
            let page = cx
                .kit
                .store
                .memories()
                .list(cx.user, &m.character_id, before, 100)
                .await?;
            let mut buf = Vec::new();
            for mem in &page.items {
                buf.extend_from_slice(if n == 0 { b"\n  " } else { b",\n  " });
                n += 1;
                serde_json::to_writer(&mut buf, &memory_entry(mem))?;
            }
            a.write(&buf).await?;
            match page.next {
                Some(next) => before = Some(next),
                None => break,
            }
        }
    }
    a.write(b"\n]\n").await?;
    Ok(count(n, "memory", "memories"))
}

fn memory_entry(m: &Memory) -> MemoryEntry<'_> {
    MemoryEntry {
        character_id: &m.character_id,
        content: &m.content,
        source_message_id: m.source_message_id,
        created_at: utc(m.created_at),
        updated_at: utc(m.updated_at),
    }
}

#[derive(Serialize)]
struct PhotoEntry<'a> {
    id: i64,
    character_id: &'a str,
    /// Its path in this archive; `None` if the image could not be found in storage.
    file: Option<String>,
    content_type: &'a str,
    width: i32,
    height: i32,
    prompt: Option<&'a str>,
    received_at: String,
}

/// The images one at a time (stored, not recompressed), then their metadata.
async fn photos(cx: &Cx, a: &mut Archive) -> anyhow::Result<String> {
    let mut entries = Vec::with_capacity(cx.photos.len());
    let mut bytes = 0u64;
    for p in &cx.photos {
        let image = cx.media.storage.get(&p.storage_key).await?;
        let file = match image {
            Some(image) => {
                let path = photo_path(p);
                a.file(&path, false, &image).await?;
                bytes += image.len() as u64;
                Some(path)
            }
            None => {
                tracing::warn!(
                    photo = p.id,
                    "photo missing from storage; exported without its image"
                );
                None
            }
        };
        entries.push(PhotoEntry {
            id: p.id,
            character_id: &p.character_id,
            file,
            content_type: &p.content_type,
            width: p.width,
            height: p.height,
            prompt: p.prompt.as_deref(),
            received_at: utc(p.received_at),
        });
    }
    a.json("photos.json", &entries).await?;
    Ok(format!(
        "{} ({} KiB of images)",
        count(entries.len() as u64, "photo", "photos"),
        bytes / 1024
    ))
}
