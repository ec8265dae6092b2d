//! The share store on disk, laid out and encoded exactly as Tahoe-LAFS 1.20's storage server
//! keeps it (`STORAGE/shares/<pp>/<si>/<shnum>`, uploads in `STORAGE/shares/incoming/...`).
//! Container bytes come from `cairn_core::storage::container`; this module does the file
//! I/O and the durability:
//!
//! - an immutable upload is written into `incoming/`, `fsync`ed, renamed into place, and the
//!   bucket directory `fsync`ed, before the upload is reported complete;
//! - a mutable write is applied to a copy in `STORAGE/cairn-tmp/`, `fsync`ed and renamed over
//!   the share, so a crash leaves the old share or the new one, never a mix;
//! - a lease appended to an immutable share is written (and synced) before the lease count
//!   that makes it visible; a reader that finds an uncounted record clips the data length at
//!   the header's size field, so share data never appears to grow.
//!
//! All functions are blocking; the HTTP layer calls them from `spawn_blocking`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use cairn_core::ids::StorageIndex;
use cairn_core::storage::container::{
    self as c, ContainerError, FileOp, ImmutableContainerHeader, ImmutableVersion, LeaseError,
    LeaseGrant, LeaseRecord, LeaseUpdate, MutableContainerHeader, MutableLeases, NodeId,
    IMMUTABLE_DATA_OFFSET, IMMUTABLE_HEADER_SIZE, MUTABLE_DATA_OFFSET, MUTABLE_HEADER_SIZE,
    MUTABLE_LEASE_SIZE,
};
use cairn_core::storage::rtw::{
    self, ExistingShare, RtwContext, RtwRequest, RtwSecrets, ShareAction, ShareNum,
};

/// Scratch directory for mutable-share copies (emptied at startup).
pub const TMP_DIR: &str = "cairn-tmp";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: corrupt share container: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: ContainerError,
    },
    #[error("{0}")]
    BadWriteEnabler(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("not enough space: {0}")]
    NoSpace(String),
    #[error("{0}")]
    WrongKind(String),
}

fn ioe(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The share directories of one storage directory.
#[derive(Debug, Clone)]
pub struct Store {
    pub storage_dir: PathBuf,
    pub shares_dir: PathBuf,
    pub incoming_dir: PathBuf,
    pub tmp_dir: PathBuf,
    pub advisories_dir: PathBuf,
    pub nodeid: NodeId,
}

/// An open immutable share.
#[derive(Debug)]
pub struct ImmutableShare {
    pub file: File,
    pub data_len: u64,
}

/// An open mutable share.
#[derive(Debug)]
pub struct MutableShare {
    pub file: File,
    pub header: MutableContainerHeader,
}

/// What a read-test-write did.
#[derive(Debug, Clone, Default)]
pub struct RtwResult {
    pub success: bool,
    pub read_data: BTreeMap<ShareNum, Vec<Vec<u8>>>,
    /// Shares written (still existing) and deleted, for the lease database.
    pub written: Vec<ShareNum>,
    pub deleted: Vec<ShareNum>,
}

impl Store {
    /// Open (creating the directories) a storage directory. Empties the scratch directory.
    pub fn open(storage_dir: &Path, nodeid: NodeId) -> Result<Store> {
        let s = Store {
            storage_dir: storage_dir.to_path_buf(),
            shares_dir: storage_dir.join("shares"),
            incoming_dir: storage_dir.join("shares").join("incoming"),
            tmp_dir: storage_dir.join(TMP_DIR),
            advisories_dir: storage_dir.join("corruption-advisories"),
            nodeid,
        };
        for d in [&s.shares_dir, &s.incoming_dir, &s.advisories_dir] {
            fs::create_dir_all(d).map_err(ioe(d))?;
        }
        if s.tmp_dir.exists() {
            fs::remove_dir_all(&s.tmp_dir).map_err(ioe(&s.tmp_dir))?;
        }
        fs::create_dir_all(&s.tmp_dir).map_err(ioe(&s.tmp_dir))?;
        Ok(s)
    }

    /// `shares/<pp>/<si>`
    pub fn bucket_dir(&self, si: &StorageIndex) -> PathBuf {
        let s = si.to_base32();
        self.shares_dir.join(&s[..2]).join(&s)
    }

    pub fn share_path(&self, si: &StorageIndex, shnum: ShareNum) -> PathBuf {
        self.bucket_dir(si).join(shnum.to_string())
    }

    pub fn incoming_path(&self, si: &StorageIndex, shnum: ShareNum) -> PathBuf {
        let s = si.to_base32();
        self.incoming_dir
            .join(&s[..2])
            .join(&s)
            .join(shnum.to_string())
    }

    /// Share numbers present for a storage index: file names matching `^[0-9]+$` (Tahoe's
    /// `NUM_RE`); numbers beyond 65535 are ignored.
    pub fn list_share_numbers(&self, si: &StorageIndex) -> Result<BTreeSet<ShareNum>> {
        let dir = self.bucket_dir(si);
        let mut out = BTreeSet::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::NotADirectory =>
            {
                return Ok(out)
            }
            Err(e) => {
                return Err(StoreError::Io {
                    path: dir,
                    source: e,
                })
            }
        };
        for e in rd {
            let e = e.map_err(ioe(&dir))?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.is_empty() && name.len() <= 5 && name.bytes().all(|b| b.is_ascii_digit()) {
                // share numbers above 255 cannot be asked for over HTTP: not listed
                if let Some(n) = name
                    .parse::<u16>()
                    .ok()
                    .and_then(|n| ShareNum::try_from(n).ok())
                {
                    out.insert(n);
                }
            }
        }
        Ok(out)
    }

    /// Open a finished immutable share (`None` if absent or not an immutable container).
    pub fn open_immutable(
        &self,
        si: &StorageIndex,
        shnum: ShareNum,
    ) -> Result<Option<ImmutableShare>> {
        let path = self.share_path(si, shnum);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::Io { path, source: e }),
        };
        let size = file.metadata().map_err(ioe(&path))?.len();
        let mut hdr = [0u8; 32];
        let n = read_up_to(&file, 0, &mut hdr).map_err(ioe(&path))?;
        if c::is_mutable_container(&hdr[..n]) {
            return Ok(None);
        }
        let header = match ImmutableContainerHeader::parse(&hdr[..n]) {
            Ok(h) => h,
            Err(_) => return Ok(None),
        };
        let layout = header.layout(size).map_err(|source| StoreError::Corrupt {
            path: path.clone(),
            source,
        })?;
        Ok(Some(ImmutableShare {
            file,
            data_len: clip_data_len(&header, layout.data_len),
        }))
    }

    /// Open a mutable share (`None` if absent or not a mutable container).
    pub fn open_mutable(&self, si: &StorageIndex, shnum: ShareNum) -> Result<Option<MutableShare>> {
        let path = self.share_path(si, shnum);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::Io { path, source: e }),
        };
        let mut hdr = [0u8; MUTABLE_HEADER_SIZE as usize];
        let n = read_up_to(&file, 0, &mut hdr).map_err(ioe(&path))?;
        if !c::is_mutable_container(&hdr[..n]) {
            return Ok(None);
        }
        let header =
            MutableContainerHeader::parse(&hdr[..n]).map_err(|source| StoreError::Corrupt {
                path: path.clone(),
                source,
            })?;
        Ok(Some(MutableShare { file, header }))
    }

    /// Remove the empty `incoming/<pp>/<si>` directories a crash left (after recovery has
    /// deleted the partial files).
    pub fn remove_empty_incoming_dirs(&self) {
        let Ok(rd) = fs::read_dir(&self.incoming_dir) else {
            return;
        };
        for pp in rd.flatten() {
            if let Ok(sis) = fs::read_dir(pp.path()) {
                for si in sis.flatten() {
                    let _ = fs::remove_dir(si.path());
                }
            }
            let _ = fs::remove_dir(pp.path());
        }
    }

    // ---- immutable uploads ------------------------------------------------------------

    /// Create `incoming/<pp>/<si>/<shnum>`: a v2 header, the (sparse) data area and the
    /// allocation lease at its end, as Tahoe's `BucketWriter` does.
    pub fn create_incoming(
        &self,
        si: &StorageIndex,
        shnum: ShareNum,
        allocated: u64,
        lease: &LeaseRecord,
    ) -> Result<File> {
        let path = self.incoming_path(si, shnum);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(ioe(parent))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(ioe(&path))?;
        let mut header = ImmutableContainerHeader::for_new_share(ImmutableVersion::V2, allocated);
        header.num_leases = 1;
        file.write_all_at(&header.to_bytes(), 0)
            .map_err(ioe(&path))?;
        let lease_off = IMMUTABLE_DATA_OFFSET
            .checked_add(allocated)
            .ok_or_else(|| StoreError::TooLarge("allocated size overflows".into()))?;
        file.write_all_at(&lease.to_immutable_bytes(), lease_off)
            .map_err(ioe(&path))?;
        Ok(file)
    }

    /// Make a complete upload durable and move it into place. Returns the file size.
    pub fn finish_incoming(&self, si: &StorageIndex, shnum: ShareNum, file: &File) -> Result<u64> {
        let from = self.incoming_path(si, shnum);
        let to = self.share_path(si, shnum);
        file.sync_all().map_err(ioe(&from))?;
        let bucket = self.bucket_dir(si);
        let prefix_existed = bucket.parent().map(|p| p.exists()).unwrap_or(true);
        fs::create_dir_all(&bucket).map_err(ioe(&bucket))?;
        fs::rename(&from, &to).map_err(ioe(&to))?;
        sync_dir(&bucket)?;
        if !prefix_existed {
            if let Some(p) = bucket.parent() {
                sync_dir(p)?;
            }
            sync_dir(&self.shares_dir)?;
        } else if let Some(p) = bucket.parent() {
            sync_dir(p)?;
        }
        remove_incoming_parents(&from);
        let size = fs::metadata(&to).map_err(ioe(&to))?.len();
        Ok(size)
    }

    /// Delete an unfinished upload.
    pub fn abort_incoming(&self, si: &StorageIndex, shnum: ShareNum) -> Result<()> {
        let path = self.incoming_path(si, shnum);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::Io { path, source: e }),
        }
        remove_incoming_parents(&path);
        Ok(())
    }

    // ---- leases ---------------------------------------------------------------------

    /// Add or renew a lease on an existing share of either kind (`add_or_renew_lease`).
    /// Returns `Ok(false)` if the file is neither container kind (skipped, as Tahoe).
    pub fn add_or_renew_lease(
        &self,
        si: &StorageIndex,
        shnum: ShareNum,
        grant: &LeaseGrant,
        available: Option<u64>,
    ) -> Result<bool> {
        let path = self.share_path(si, shnum);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(ioe(&path))?;
        let size = file.metadata().map_err(ioe(&path))?.len();
        let mut hdr = [0u8; MUTABLE_HEADER_SIZE as usize];
        let n = read_up_to(&file, 0, &mut hdr).map_err(ioe(&path))?;
        let corrupt = |source| StoreError::Corrupt {
            path: path.clone(),
            source,
        };
        if c::is_mutable_container(&hdr[..n]) {
            let header = MutableContainerHeader::parse(&hdr[..n]).map_err(corrupt)?;
            let mut leases = read_mutable_leases(&file, &path, &header, size)?;
            let upd = leases
                .add_or_renew(grant, available)
                .map_err(|e| lease_err(&path, e))?;
            let ops = leases.update_ops(header.extra_lease_offset, upd);
            let appended = matches!(upd, LeaseUpdate::Added { index } if index >= c::MUTABLE_LEASE_SLOTS
                && index + 1 == leases.records.len());
            if ops.is_empty() {
                return Ok(true);
            }
            if appended {
                // Two writes (count, record): do them on a copy, atomically.
                drop(file);
                self.rewrite_atomically(&path, None, &ops)?;
            } else {
                // One record of 92 bytes, in place.
                apply_ops(&file, &path, &ops)?;
                file.sync_data().map_err(ioe(&path))?;
            }
            return Ok(true);
        }
        let header = match ImmutableContainerHeader::parse(&hdr[..n]) {
            Ok(h) => h,
            Err(_) => return Ok(false),
        };
        let layout = header.layout(size).map_err(corrupt)?;
        let clipped = clip_data_len(&header, layout.data_len);
        if clipped != layout.data_len {
            // A previous lease append crashed before its count was written: count it now.
            let extra = (layout.data_len - clipped) / c::IMMUTABLE_LEASE_SIZE as u64;
            let mut fixed = header;
            fixed.num_leases = header.num_leases.saturating_add(extra as u32);
            file.write_all_at(&fixed.to_bytes(), 0)
                .map_err(ioe(&path))?;
            file.sync_data().map_err(ioe(&path))?;
            return self.add_or_renew_lease(si, shnum, grant, available);
        }
        let (lo, llen) = layout.leases_range();
        let mut buf =
            vec![0u8; usize::try_from(llen).map_err(|_| corrupt(ContainerError::Overflow))?];
        file.read_exact_at(&mut buf, lo).map_err(ioe(&path))?;
        let mut leases = c::parse_immutable_leases(header.version, &buf).map_err(corrupt)?;
        let upd = c::add_or_renew(&mut leases, header.version.secret_form(), grant, available)
            .map_err(|e| lease_err(&path, e))?;
        let ops = c::immutable_lease_update_ops(&layout, &leases, upd);
        // Ops are (record, then count): sync the record before the count makes it visible.
        for op in &ops {
            apply_ops(&file, &path, std::slice::from_ref(op))?;
            file.sync_data().map_err(ioe(&path))?;
        }
        Ok(true)
    }

    // ---- mutable --------------------------------------------------------------------

    /// Read-test-write on one storage index (`slot_testv_and_readv_and_writev`). The caller
    /// holds the share-mutation lock. `available` bounds growth of the files.
    pub fn read_test_write(
        &self,
        si: &StorageIndex,
        request: &RtwRequest,
        secrets: &RtwSecrets,
        ctx: &RtwContext,
        available: Option<u64>,
    ) -> Result<RtwResult> {
        let bucket = self.bucket_dir(si);
        let mut files: BTreeMap<ShareNum, (File, u64)> = BTreeMap::new();
        let mut existing = BTreeMap::new();
        for shnum in self.list_share_numbers(si)? {
            let path = self.share_path(si, shnum);
            let file = File::open(&path).map_err(ioe(&path))?;
            let size = file.metadata().map_err(ioe(&path))?.len();
            let mut hdr = [0u8; MUTABLE_HEADER_SIZE as usize];
            let n = read_up_to(&file, 0, &mut hdr).map_err(ioe(&path))?;
            if !c::is_mutable_container(&hdr[..n]) {
                return Err(StoreError::WrongKind(format!(
                    "storage index {} holds immutable share {shnum}; it cannot take mutable writes",
                    si.to_base32()
                )));
            }
            let header =
                MutableContainerHeader::parse(&hdr[..n]).map_err(|source| StoreError::Corrupt {
                    path: path.clone(),
                    source,
                })?;
            let leases = read_mutable_leases(&file, &path, &header, size)?;
            existing.insert(shnum, ExistingShare { header, leases });
            files.insert(shnum, (file, size));
        }
        let outcome = rtw::evaluate(&existing, request, secrets, ctx, |shnum, off, len| {
            let (file, _) = files
                .get(&shnum)
                .ok_or_else(|| io::Error::other("share vanished"))?;
            let mut buf = vec![0u8; usize::try_from(len).map_err(io::Error::other)?];
            file.read_exact_at(&mut buf, MUTABLE_DATA_OFFSET + off)?;
            Ok::<_, io::Error>(buf)
        })
        .map_err(|e| match e {
            rtw::RtwError::BadWriteEnabler { shnum, source } => {
                StoreError::BadWriteEnabler(format!("share {shnum}: {source}"))
            }
            rtw::RtwError::Container { shnum, source } => {
                StoreError::TooLarge(format!("share {shnum}: {source}"))
            }
            rtw::RtwError::Lease { shnum, source } => match source {
                LeaseError::NoSpace { .. } => {
                    StoreError::NoSpace(format!("share {shnum}: {source}"))
                }
                other => StoreError::TooLarge(format!("share {shnum}: {other}")),
            },
            rtw::RtwError::Read { shnum, source } => StoreError::Io {
                path: self.share_path(si, shnum),
                source,
            },
        })?;
        let mut result = RtwResult {
            success: outcome.success,
            read_data: outcome.read_data,
            ..Default::default()
        };
        if !outcome.success {
            return Ok(result);
        }
        // Space: the files may only grow by what is available.
        if let Some(avail) = available {
            let mut growth = 0u64;
            for p in &outcome.plan {
                let (old, ops_end, base) = match &p.action {
                    ShareAction::Create { initial, ops } => (0, ops_end(ops), initial.len() as u64),
                    ShareAction::Update { ops } => {
                        let old = files.get(&p.shnum).map(|f| f.1).unwrap_or(0);
                        (old, ops_end(ops), old)
                    }
                    ShareAction::Delete { .. } => continue,
                };
                growth = growth.saturating_add(ops_end.max(base).saturating_sub(old));
            }
            if growth > avail {
                return Err(StoreError::NoSpace(format!(
                    "the write needs {growth} more bytes, {avail} available"
                )));
            }
        }
        drop(files);
        for p in &outcome.plan {
            let path = self.share_path(si, p.shnum);
            match &p.action {
                ShareAction::Delete { existed } => {
                    if *existed {
                        match fs::remove_file(&path) {
                            Ok(()) => {}
                            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                            Err(e) => return Err(StoreError::Io { path, source: e }),
                        }
                        sync_dir(&bucket)?;
                    }
                    if fs::remove_dir(&bucket).is_ok() {
                        if let Some(parent) = bucket.parent() {
                            let _ = sync_dir(parent);
                        }
                    }
                    result.deleted.push(p.shnum);
                }
                ShareAction::Create { initial, ops } => {
                    fs::create_dir_all(&bucket).map_err(ioe(&bucket))?;
                    self.rewrite_atomically(&path, Some(initial), ops)?;
                    if let Some(parent) = bucket.parent() {
                        sync_dir(parent)?;
                    }
                    result.written.push(p.shnum);
                }
                ShareAction::Update { ops } => {
                    if !ops.is_empty() {
                        self.rewrite_atomically(&path, None, ops)?;
                    }
                    result.written.push(p.shnum);
                }
            }
        }
        Ok(result)
    }

    /// Replace `path` by (a copy of it, or `initial`) with `ops` applied: write the copy in
    /// the scratch directory, `fsync` it, rename it over `path`, `fsync` the directory.
    fn rewrite_atomically(
        &self,
        path: &Path,
        initial: Option<&[u8]>,
        ops: &[FileOp<'_>],
    ) -> Result<()> {
        rewrite_atomically_in(&self.tmp_dir, path, initial, ops)
    }

    /// Write a corruption advisory as Tahoe does (`corruption-advisories/<time>--<si>-<shnum>`).
    pub fn write_corruption_report(
        &self,
        kind: &str,
        si: &StorageIndex,
        shnum: ShareNum,
        reason: &str,
        now_iso: &str,
    ) -> Result<()> {
        let si_s = si.to_base32();
        let report = format!(
            "report: Share Corruption\ntype: {kind}\nstorage_index: {si_s}\nshare_number: {shnum}\n{reason}\n"
        );
        let name = format!("{now_iso}--{si_s}-{shnum}").replace(':', "");
        let path = self.advisories_dir.join(name);
        fs::write(&path, report).map_err(ioe(&path))
    }
}

/// [`Store`]'s atomic rewrite, for callers that hold the share-mutation lock but no
/// `Store` (garbage collection): copy `path` (or write `initial`) into `tmp_dir` (the
/// storage directory's [`TMP_DIR`], created if missing), apply `ops` (including
/// truncations), `fsync`, rename over `path`, `fsync` the directory. A crash leaves the
/// old file or the new one.
pub fn rewrite_atomically_in(
    tmp_dir: &Path,
    path: &Path,
    initial: Option<&[u8]>,
    ops: &[FileOp<'_>],
) -> Result<()> {
    fs::create_dir_all(tmp_dir).map_err(ioe(tmp_dir))?;
    let tmp = tmp_dir.join(format!("{:016x}", rand::random::<u64>()));
    let result = (|| {
        match initial {
            Some(bytes) => fs::write(&tmp, bytes).map_err(ioe(&tmp))?,
            None => {
                fs::copy(path, &tmp).map_err(ioe(path))?;
            }
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&tmp)
            .map_err(ioe(&tmp))?;
        apply_ops(&f, &tmp, ops)?;
        f.sync_all().map_err(ioe(&tmp))?;
        fs::rename(&tmp, path).map_err(ioe(path))?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn lease_err(path: &Path, e: LeaseError) -> StoreError {
    match e {
        LeaseError::NoSpace { .. } => StoreError::NoSpace(format!("{}: {e}", path.display())),
        other => StoreError::TooLarge(format!("{}: {other}", path.display())),
    }
}

/// The data length a reader should use: the layout's, clipped at the header's size field
/// when that is exact (< 2^32-1), which hides a lease record appended but not yet counted.
fn clip_data_len(header: &ImmutableContainerHeader, data_len: u64) -> u64 {
    if header.max_size_field != u32::MAX && data_len > u64::from(header.max_size_field) {
        let extra = data_len - u64::from(header.max_size_field);
        if extra.is_multiple_of(c::IMMUTABLE_LEASE_SIZE as u64) {
            return u64::from(header.max_size_field);
        }
    }
    data_len
}

fn read_mutable_leases(
    file: &File,
    path: &Path,
    header: &MutableContainerHeader,
    size: u64,
) -> Result<MutableLeases> {
    let corrupt = |source| StoreError::Corrupt {
        path: path.to_path_buf(),
        source,
    };
    let mut slots = vec![0u8; (MUTABLE_DATA_OFFSET - MUTABLE_HEADER_SIZE) as usize];
    file.read_exact_at(&mut slots, MUTABLE_HEADER_SIZE)
        .map_err(ioe(path))?;
    let mut cnt = [0u8; 4];
    file.read_exact_at(&mut cnt, header.extra_lease_offset)
        .map_err(ioe(path))?;
    let count = u32::from_be_bytes(cnt);
    let (off, len) = header
        .extra_lease_block_range(count, size)
        .map_err(corrupt)?;
    if len > 4 + (MUTABLE_LEASE_SIZE as u64) * 1_000_000 {
        return Err(corrupt(ContainerError::Inconsistent(
            "absurd number of extra leases",
        )));
    }
    let mut block = vec![0u8; len as usize];
    file.read_exact_at(&mut block, off).map_err(ioe(path))?;
    MutableLeases::parse(header.version.secret_form(), &slots, &block).map_err(corrupt)
}

fn ops_end(ops: &[FileOp<'_>]) -> u64 {
    ops.iter().map(|o| o.end()).max().unwrap_or(0)
}

/// Apply container file changes in order.
pub fn apply_ops(file: &File, path: &Path, ops: &[FileOp<'_>]) -> Result<()> {
    for op in ops {
        match op {
            FileOp::Write { offset, data } => {
                file.write_all_at(data, *offset).map_err(ioe(path))?
            }
            FileOp::Zero { offset, len } => {
                let size = file.metadata().map_err(ioe(path))?.len();
                let end = offset.saturating_add(*len);
                // Within the file: write zeros; beyond it: extend (a hole reads as zeros).
                let in_file_end = end.min(size);
                let mut pos = *offset;
                let zeros = vec![0u8; 1 << 16];
                while pos < in_file_end {
                    let n = (in_file_end - pos).min(zeros.len() as u64) as usize;
                    file.write_all_at(&zeros[..n], pos).map_err(ioe(path))?;
                    pos += n as u64;
                }
                if end > size {
                    file.set_len(end).map_err(ioe(path))?;
                }
            }
            // Callers sync after the whole list (or apply it to a scratch copy that is
            // synced before it replaces the share), as for the other ops.
            FileOp::Truncate { len } => file.set_len(*len).map_err(ioe(path))?,
        }
    }
    Ok(())
}

/// Read up to `buf.len()` bytes at `offset`; returns how many were read.
pub fn read_up_to(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// `fsync` a directory (makes renames and creations in it durable).
pub fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(ioe(dir))?;
    d.sync_all().map_err(ioe(dir))
}

fn remove_incoming_parents(path: &Path) {
    // incoming/<pp>/<si>/<shnum>: try removing <si> then <pp>; fails harmlessly if in use.
    if let Some(si_dir) = path.parent() {
        if fs::remove_dir(si_dir).is_ok() {
            if let Some(pp) = si_dir.parent() {
                let _ = fs::remove_dir(pp);
            }
        }
    }
}

/// Free bytes for share storage: the filesystem's space available to unprivileged users,
/// less `reserved_space` (`fileutil.get_available_space`). 0 when readonly.
pub fn disk_available(path: &Path, reserved_space: u64) -> Option<u64> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a valid NUL-terminated string and st a valid out-pointer.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    let avail = (st.f_bavail as u64).saturating_mul(st.f_frsize as u64);
    Some(avail.saturating_sub(reserved_space))
}

/// Data bytes of a share readable at `[offset, offset+len)`, clipped to `data_len`, from a
/// container whose data starts at `data_offset`.
pub fn read_share_data(
    file: &File,
    data_offset: u64,
    data_len: u64,
    offset: u64,
    len: u64,
) -> io::Result<Vec<u8>> {
    let avail = data_len.saturating_sub(offset);
    let n = len.min(avail);
    let n = usize::try_from(n).map_err(io::Error::other)?;
    let mut buf = vec![0u8; n];
    file.read_exact_at(&mut buf, data_offset + offset)?;
    Ok(buf)
}

/// Where immutable share data starts in the container.
pub const IMMUTABLE_DATA_START: u64 = IMMUTABLE_HEADER_SIZE;
