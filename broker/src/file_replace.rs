//! Replacing a file atomically: readers see the old contents or the new,
//! never half of each, and a crash or a full disk leaves the old file.
//!
//! The new contents go to a temporary file in the same directory (so the
//! rename stays on one filesystem), which is flushed to disk and renamed
//! over the target; then the directory itself is flushed so the rename
//! survives a power cut. Used by `moth passwd`, where a torn password file
//! would lock every user out.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Permissions of a file that did not exist before: owner read/write only,
/// since it holds password hashes.
pub const NEW_FILE_MODE: u32 = 0o600;

/// Writes `contents` to `path` atomically. An existing file keeps its
/// permission bits; a new one gets [`NEW_FILE_MODE`]. On failure the
/// temporary file is removed and the target is untouched.
pub fn replace_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let mode = existing_mode(path)?.unwrap_or(NEW_FILE_MODE);
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let written = write_new(&tmp, contents, mode).and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(&dir)
}

/// The permission bits of `path`, `None` when it does not exist.
fn existing_mode(path: &Path) -> io::Result<Option<u32>> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(mode_of(&m))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn mode_of(m: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o7777
}
#[cfg(not(unix))]
fn mode_of(_: &fs::Metadata) -> u32 {
    NEW_FILE_MODE
}

/// Creates `tmp` (it must not exist) with `mode` from the start, so the
/// hashes are never readable by others even for an instant, and flushes it.
fn write_new(tmp: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode & 0o777);
    }
    let mut f = opts.open(tmp)?;
    // The umask may have narrowed `mode`, and set-id bits are not applied by open: set them exactly.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    f.write_all(contents)?;
    f.sync_all()
}

/// Flushes a directory entry change (the rename) to disk.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("moth-replace-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn new_files_are_private_and_existing_ones_keep_their_mode() {
        let d = temp_dir("mode");
        let p = d.join("passwd");
        replace_file(&p, b"a\n").unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        replace_file(&p, b"b\n").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "b\n");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1, "no temporary file is left behind");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_the_original_file_intact() {
        let d = temp_dir("fail");
        let p = d.join("passwd");
        fs::write(&p, "alice:old\n").unwrap();
        // The temporary file's place is taken: the write fails before the rename.
        let tmp = d.join(format!(".passwd.tmp-{}", std::process::id()));
        fs::create_dir(&tmp).unwrap();
        assert!(replace_file(&p, b"alice:new\n").is_err());
        assert_eq!(fs::read_to_string(&p).unwrap(), "alice:old\n");
        fs::remove_dir(&tmp).unwrap();
        // The rename fails (a directory is in the way): the temporary file is removed.
        let in_the_way = d.join("sub");
        fs::create_dir(&in_the_way).unwrap();
        fs::write(in_the_way.join("keep"), "x").unwrap();
        assert!(replace_file(&in_the_way, b"alice:new\n").is_err());
        assert_eq!(fs::read_to_string(in_the_way.join("keep")).unwrap(), "x");
        let mut names: Vec<_> = fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["passwd", "sub"], "no temporary file is left behind");
        fs::remove_dir_all(&d).unwrap();
    }
}
