// Package backup copies a strata data directory into a backup directory
// and back: full or incremental backups, zstd-compressed, every file
// checksummed with BLAKE3 in a manifest (FORMAT.md).
//
// What it promises:
//
//   - A backup is consistent while writers keep writing: each log is read
//     up to the head it had when the backup started — a prefix of its
//     chain — without taking the tenant lock, so appends never wait.
//   - A backup exists only once its manifest does: everything is written
//     under <id>.tmp/, fsynced, and the directory renamed to <id> with
//     manifest.json inside; a failed or killed backup leaves a .tmp
//     directory, never a manifest that claims a backup (the next backup
//     removes it).
//   - Caches are not copied (index/, cache/, rate tables, lock files, the
//     metrics file, blob usage counters): restore rebuilds them.
//   - Segments are stored with each record's CRC checked, then zeroed
//     (format 2): a record that fails its CRC fails the backup, and
//     restore computes every CRC again, giving the original bytes.
//   - Verify checks every stored file's size and BLAKE3 against its
//     manifest; Restore checks them too as it reads, then proves each
//     restored log with log.Verify and rebuilds its indexes.
//
// The package knows nothing of HTTP; the CLI (cmd_backup.go) shows the
// progress.
package backup
