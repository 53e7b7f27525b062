//! Two handles on one local folder are recognised as one storage, however the folder is
//! reached: by a symlink, or by a bind mount (the same device and inode under another path).
//! A copy or move of an object onto itself through them is refused.

use std::path::Path;
use std::process::Command;

use storage_core::{Bucket, StorageError};

fn refused(a: &Bucket, from: &str, b: &Bucket, to: &str) {
    let e = a.check_not_same_object(from, b, to, "move").unwrap_err();
    assert!(
        matches!(
            e,
            StorageError::InvalidInput { .. } | StorageError::InvalidKey { .. }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("onto itself"), "{e}");
}

#[test]
fn a_folder_reached_through_a_symlink_is_the_same_storage() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir_all(real.join("sub")).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let sub_link = dir.path().join("sub-link");
    std::os::unix::fs::symlink(real.join("sub"), &sub_link).unwrap();

    let a = Bucket::local("a", &real).unwrap();
    let b = Bucket::local("b", &link).unwrap();
    let c = Bucket::local("c", &sub_link).unwrap();
    assert_eq!(a.location(), b.location());
    assert!(a.is_same_object("k", &b, "k"));
    refused(&a, "k", &b, "k");
    // A folder inside the other, reached through its own symlink.
    assert!(a.is_same_object("sub/k", &c, "k"));
    assert!(a.scopes_overlap("", &c, ""));
    refused(&c, "k", &a, "sub/k");
    // Different keys, or a different folder, are different objects.
    assert!(!a.is_same_object("k", &b, "other"));
    let elsewhere = Bucket::local("d", dir.path().join("elsewhere")).unwrap();
    assert!(!a.is_same_object("k", &elsewhere, "k"));
}

/// Unmounts on drop, so a failed assertion leaves no mount behind.
struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn a_folder_reached_through_a_bind_mount_is_the_same_storage() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    let mount = dir.path().join("mount");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::create_dir_all(&mount).unwrap();
    // Opened first by its own path, as a process that uses both would.
    let a = Bucket::local("a", &real).unwrap();
    let bound = Command::new("mount")
        .args(["--bind"])
        .arg(&real)
        .arg(&mount)
        .output();
    match bound {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "SKIPPED: bind mounts need root (CAP_SYS_ADMIN): {}; the symlink test and the local-store unit test prove the device-and-inode path",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("SKIPPED: no `mount` command ({e})");
            return;
        }
    }
    let _guard = Mounted(&mount);
    // Not a symlink: canonicalizing keeps the mount's own path.
    assert_eq!(mount.canonicalize().unwrap(), mount.canonicalize().unwrap());
    assert_ne!(real.canonicalize().unwrap(), mount.canonicalize().unwrap());
    let b = Bucket::local("b", &mount).unwrap();
    assert_eq!(a.location(), b.location());
    refused(&a, "k", &b, "k");
    refused(&b, "k", &a, "k");
}
