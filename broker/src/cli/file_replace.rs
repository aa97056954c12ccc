//! Replacing a file atomically: readers see the old contents or the new,
//! never half of each, and a crash or a full disk leaves the old file.
//!
//! The new contents go to a temporary file in the same directory (so the
//! rename stays on one filesystem), which is flushed to disk and renamed
//! over the target; then the directory itself is flushed so the rename
//! survives a power cut. Used by `moth passwd`, where a torn password file
//! would lock every user out.
//!
//! A rename makes a new inode, so what the old one carried is copied over
//! explicitly: its mode and its owner (root editing a file owned by the
//! broker's user must not leave a root-owned `0600` file the broker cannot
//! read). A symbolic link is followed: its target is replaced, the link stays.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Permissions of a file that did not exist before: owner read/write only,
/// since it holds password hashes.
pub(crate) const NEW_FILE_MODE: u32 = 0o600;

/// Writes `contents` to `path` atomically. An existing file keeps its
/// permission bits; a new one gets [`NEW_FILE_MODE`]. On failure the
/// temporary file is removed and the target is untouched.
pub(crate) fn replace_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let resolved = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path)?,
        _ => path.to_path_buf(),
    };
    let path = resolved.as_path();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let existing = existing(path)?;
    let mode = existing.as_ref().map_or(NEW_FILE_MODE, mode_of);
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let written = write_new(&tmp, contents, mode, existing.as_ref()).and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(&dir)
}

/// The metadata of `path`, `None` when it does not exist.
fn existing(path: &Path) -> io::Result<Option<fs::Metadata>> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(m)),
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
fn write_new(tmp: &Path, contents: &[u8], mode: u32, old: Option<&fs::Metadata>) -> io::Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode & 0o777);
    }
    let mut f = opts.open(tmp)?;
    #[cfg(unix)]
    if let Some(old) = old {
        use std::os::unix::fs::MetadataExt;
        let now = f.metadata()?;
        if (now.uid(), now.gid()) != (old.uid(), old.gid()) {
            std::os::unix::fs::fchown(&f, Some(old.uid()), Some(old.gid()))?;
        }
    }
    #[cfg(not(unix))]
    let _ = old;
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
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

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

    #[test]
    fn the_owner_is_kept_and_a_symlink_is_followed() {
        let d = temp_dir("owner");
        let real = d.join("real");
        fs::write(&real, "a\n").unwrap();
        let me = fs::metadata(&real).unwrap().uid();
        // As root (CI containers), hand the file to another user as an operator would to the broker's.
        let (uid, gid) = if me == 0 { (Some(4321), Some(4321)) } else { (Some(me), None) };
        std::os::unix::fs::chown(&real, uid, gid).unwrap();
        let before = fs::metadata(&real).unwrap();
        let link = d.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        replace_file(&link, b"b\n").unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
        assert_eq!(fs::read_to_string(&real).unwrap(), "b\n");
        let after = fs::metadata(&real).unwrap();
        assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
        fs::remove_dir_all(&d).unwrap();
    }
}
