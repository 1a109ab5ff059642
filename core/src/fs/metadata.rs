//! File metadata, from statx.

/// A timestamp: seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileTime {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub sec: i64,
    /// Nanoseconds within the second.
    pub nsec: u32,
}

/// What kind of file a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A FIFO.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// Unknown (some file systems do not say in directory listings).
    Unknown,
}

impl FileType {
    /// The type in the `S_IFMT` bits of a mode.
    pub fn from_mode(mode: u32) -> FileType {
        match mode & libc::S_IFMT {
            libc::S_IFREG => FileType::File,
            libc::S_IFDIR => FileType::Dir,
            libc::S_IFLNK => FileType::Symlink,
            libc::S_IFIFO => FileType::Fifo,
            libc::S_IFSOCK => FileType::Socket,
            libc::S_IFCHR => FileType::CharDevice,
            libc::S_IFBLK => FileType::BlockDevice,
            _ => FileType::Unknown,
        }
    }
}

/// What [`crate::fs::stat`] and its kin report (the fields of `struct stat`, plus birth time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Device holding the file (`makedev(major, minor)`).
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Type and permission bits (`st_mode`).
    pub mode: u32,
    /// Hard links.
    pub nlink: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device this file is, for device files.
    pub rdev: u64,
    /// Size in bytes.
    pub size: u64,
    /// Preferred I/O block size.
    pub blksize: u64,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    /// Last access.
    pub atime: FileTime,
    /// Last modification of the contents.
    pub mtime: FileTime,
    /// Last change of the inode.
    pub ctime: FileTime,
    /// Creation, where the file system records it (else zero).
    pub birthtime: FileTime,
}

impl Metadata {
    pub(crate) fn from_statx(s: &libc::statx) -> Metadata {
        let t = |t: &libc::statx_timestamp| FileTime {
            sec: t.tv_sec,
            nsec: t.tv_nsec,
        };
        Metadata {
            dev: libc::makedev(s.stx_dev_major, s.stx_dev_minor),
            ino: s.stx_ino,
            mode: s.stx_mode as u32,
            nlink: s.stx_nlink as u64,
            uid: s.stx_uid,
            gid: s.stx_gid,
            rdev: libc::makedev(s.stx_rdev_major, s.stx_rdev_minor),
            size: s.stx_size,
            blksize: s.stx_blksize as u64,
            blocks: s.stx_blocks,
            atime: t(&s.stx_atime),
            mtime: t(&s.stx_mtime),
            ctime: t(&s.stx_ctime),
            birthtime: if s.stx_mask & libc::STATX_BTIME != 0 {
                t(&s.stx_btime)
            } else {
                FileTime::default()
            },
        }
    }

    /// The file's type.
    pub fn file_type(&self) -> FileType {
        FileType::from_mode(self.mode)
    }

    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.file_type() == FileType::File
    }

    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.file_type() == FileType::Dir
    }
}
