//! Reading the user's content: a file, or stdin spooled so it can be read twice
//! (a convergent key needs the whole plaintext before encryption starts).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Stdin up to this size stays in memory; beyond it, it is spooled to a temporary file,
/// so memory does not grow with the input.
const STDIN_IN_MEMORY_MAX_BYTES: usize = 64 << 20;

pub enum Content {
    Memory(Vec<u8>),
    File {
        file: File,
        size: u64,
        _spool: Option<SpoolGuard>,
    },
}

/// Removes a spool file when dropped.
pub struct SpoolGuard(PathBuf);

impl Drop for SpoolGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Content {
    /// `None` or `-` reads stdin.
    pub fn open(arg: Option<&Path>) -> Result<Content> {
        match arg {
            Some(p) if p != Path::new("-") => {
                let file = File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
                let meta = file
                    .metadata()
                    .with_context(|| format!("cannot stat {}", p.display()))?;
                if meta.is_dir() {
                    anyhow::bail!("{} is a directory, not a file", p.display());
                }
                Ok(Content::File {
                    file,
                    size: meta.len(),
                    _spool: None,
                })
            }
            _ => Self::from_stdin(STDIN_IN_MEMORY_MAX_BYTES),
        }
    }

    /// As [`Content::open`], but stdin beyond `in_memory_max` bytes is spooled to a
    /// temporary file (`cairn put` keeps little in memory: it only streams the content).
    pub fn open_spooling_after(arg: Option<&Path>, in_memory_max: usize) -> Result<Content> {
        match arg {
            Some(p) if p != Path::new("-") => Self::open(arg),
            _ => Self::from_stdin(in_memory_max),
        }
    }

    fn from_stdin(in_memory_max: usize) -> Result<Content> {
        let mut stdin = io::stdin().lock();
        let mut buf = Vec::new();
        (&mut stdin)
            .take(in_memory_max as u64 + 1)
            .read_to_end(&mut buf)
            .context("reading stdin")?;
        if buf.len() <= in_memory_max {
            return Ok(Content::Memory(buf));
        }
        let path = std::env::temp_dir().join(format!(
            "cairn-stdin-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let guard = SpoolGuard(path.clone());
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("cannot create spool file {}", path.display()))?;
        file.write_all(&buf).context("spooling stdin")?;
        drop(buf);
        io::copy(&mut stdin, &mut file).context("spooling stdin")?;
        let size = file.stream_position()?;
        Ok(Content::File {
            file,
            size,
            _spool: Some(guard),
        })
    }

    pub fn size(&self) -> u64 {
        match self {
            Content::Memory(v) => v.len() as u64,
            Content::File { size, .. } => *size,
        }
    }

    /// Calls `f` with consecutive chunks of at most `chunk` bytes (each exactly `chunk`
    /// except the last), from the start of the content.
    pub fn for_each_chunk(
        &mut self,
        chunk: usize,
        mut f: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        match self {
            Content::Memory(v) => {
                for c in v.chunks(chunk.max(1)) {
                    f(c)?;
                }
                Ok(())
            }
            Content::File { file, size, .. } => {
                file.seek(SeekFrom::Start(0))?;
                let mut buf = vec![0u8; chunk.max(1)];
                let mut left = *size;
                while left > 0 {
                    let want = (buf.len() as u64).min(left) as usize;
                    file.read_exact(&mut buf[..want])
                        .context("reading input (did it change while being read?)")?;
                    f(&buf[..want])?;
                    left -= want as u64;
                }
                Ok(())
            }
        }
    }
}
