//! `cairn get CAP [OUT|-]`: download through a node's gateway, as `tahoe get` does
//! (`allmydata/scripts/tahoe_get.py`): `GET /uri/$CAP` with the cap percent-encoded. The body
//! streams to OUT (under a temporary name in OUT's directory, renamed into place only when
//! complete, so OUT never holds a partial file) or to stdout.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::http::{self, GatewayStatusError, NodeArgs};
use crate::transfer::{runtime, Bar, Summary};

#[derive(clap::Args, Debug)]
pub struct GetArgs {
    /// Print one JSON object {cap, size, seconds, mib_per_s} when done: on stdout when the
    /// content goes to a file, on stderr when it goes to stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub node: NodeArgs,
    /// The capability to read (URI:...), optionally followed by /PATH below a directory cap.
    pub cap: String,
    /// Where to write the content; `-` or nothing writes to stdout.
    pub out: Option<PathBuf>,
}

/// Run `cairn get`. Gateway errors are printed as `tahoe get` prints them.
pub fn run(args: GetArgs, outer: &NodeArgs) -> Result<ExitCode> {
    let node = args.node.within(outer);
    exit_code(get(args, &node))
}

/// A gateway's error answer is printed as `tahoe` prints it (no `cairn: error:` prefix).
pub fn exit_code(r: Result<()>) -> Result<ExitCode> {
    match r {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => match e.downcast_ref::<GatewayStatusError>() {
            Some(g) => {
                eprintln!("{g}");
                Ok(ExitCode::FAILURE)
            }
            None => Err(e),
        },
    }
}

/// The path below the gateway root for `arg`: `uri/<quoted cap>[/<escaped path>]`, as
/// `tahoe get` builds it (`get_alias` splits a cap argument at its first `/`).
pub fn request_path(arg: &str) -> Result<String> {
    let arg = arg.trim();
    if !arg.starts_with("URI:") {
        bail!("{arg:?} is not a capability (expected URI:...); cairn has no aliases yet");
    }
    let (cap, path) = match arg.split_once('/') {
        Some((c, p)) => (c, Some(p)),
        None => (arg, None),
    };
    let mut rel = format!("uri/{}", http::quote(cap));
    if let Some(p) = path.filter(|p| !p.is_empty()) {
        rel.push('/');
        rel.push_str(&http::quote(p));
    }
    Ok(rel)
}

fn get(args: GetArgs, node: &NodeArgs) -> Result<()> {
    let rel = request_path(&args.cap)?;
    let node = node.resolve()?;
    let to_stdout = args.out.as_deref().is_none_or(|o| o == Path::new("-"));
    if let Some(out) = args.out.as_deref().filter(|_| !to_stdout) {
        if out.is_dir() {
            bail!(
                "{} is a directory; give the file name to write",
                out.display()
            );
        }
    }
    let started = Instant::now();
    let rt = runtime()?;
    let size = rt.block_on(async {
        let resp = http::get(&node, &rel).await?;
        if !resp.is_success() {
            return Err(resp.into_error("Error during GET").await);
        }
        if to_stdout {
            let mut out = std::io::stdout().lock();
            copy_body(resp, &mut out).await
        } else {
            let dest = args.out.as_deref().unwrap_or(Path::new("-"));
            let mut out = AtomicFile::create(dest)?;
            let n = copy_body(resp, &mut out.file).await?;
            out.commit()?;
            Ok(n)
        }
    })?;
    let summary = Summary::new(args.cap.trim().to_string(), size, started);
    if std::io::stderr().is_terminal() && !args.json {
        let dest = if to_stdout {
            "stdout".to_string()
        } else {
            args.out
                .as_deref()
                .unwrap_or(Path::new("-"))
                .display()
                .to_string()
        };
        eprintln!("{} to {dest}", summary.human());
    }
    if args.json {
        let line = serde_json::to_string(&summary).context("encoding JSON")?;
        if to_stdout {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    Ok(())
}

/// Copy the body to `out` as it arrives; returns its length. Memory: one chunk at a time.
async fn copy_body(mut resp: http::Response, out: &mut dyn Write) -> Result<u64> {
    let expected = resp.content_length;
    let bar = Bar::new(expected, "get");
    let result = async {
        let mut n = 0u64;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| e.context(format!("download interrupted after {n} bytes")))?
        {
            out.write_all(&chunk).context("writing the output")?;
            n += chunk.len() as u64;
            bar.inc(chunk.len() as u64);
        }
        out.flush().context("writing the output")?;
        if let Some(len) = expected {
            if len != n {
                bail!("download interrupted: got {n} of {len} bytes");
            }
        }
        Ok(n)
    }
    .await;
    bar.clear();
    result
}

/// A file written under a temporary name next to its destination and renamed into place by
/// `commit`; dropped uncommitted, the temporary file is removed.
struct AtomicFile {
    file: File,
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl AtomicFile {
    fn create(dest: &Path) -> Result<AtomicFile> {
        let name = dest
            .file_name()
            .with_context(|| format!("{}: not a file name", dest.display()))?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(
            ".cairn-get-{}-{:08x}.part",
            std::process::id(),
            rand::random::<u32>()
        ));
        let tmp = dir.join(tmp_name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok(AtomicFile {
            file,
            tmp,
            dest: dest.to_path_buf(),
            committed: false,
        })
    }

    fn commit(mut self) -> Result<()> {
        self.file
            .sync_all()
            .with_context(|| format!("writing {}", self.tmp.display()))?;
        std::fs::rename(&self.tmp, &self.dest).with_context(|| {
            format!("renaming {} to {}", self.tmp.display(), self.dest.display())
        })?;
        self.committed = true;
        // Make the rename itself durable; a failure here leaves a complete file in place.
        if let Some(dir) = self.dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            request_path("URI:CHK:aa:bb:3:10:99").unwrap(),
            "uri/URI%3ACHK%3Aaa%3Abb%3A3%3A10%3A99"
        );
        assert_eq!(
            request_path(" URI:LIT:mfrgg\n").unwrap(),
            "uri/URI%3ALIT%3Amfrgg"
        );
        assert_eq!(
            request_path("URI:DIR2:x:y/sub dir/f").unwrap(),
            "uri/URI%3ADIR2%3Ax%3Ay/sub%20dir/f"
        );
        assert!(request_path("tahoe:foo").is_err());
    }
}
