#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `write(2)`, named apart from `FileSink.write`.
private func posixWrite(_ fd: Int32, _ base: UnsafeRawPointer, _ count: Int) -> Int { write(fd, base, count) }

/// A writer over a file descriptor whose errors name the file.
public struct FileSink {
    let fd: Int32
    let path: String
    public private(set) var bytesWritten = 0

    public mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard var base = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let n = posixWrite(fd, base, remaining)
            if n < 0 {
                if errno == EINTR { continue }
                throw SafetensorsError(file: path, .io, "write failed: \(String(cString: strerror(errno)))")
            }
            remaining -= n
            base += n
            bytesWritten += n
        }
    }
}

/// Writes files so that the final name only ever holds a complete file: the content goes to a temporary
/// file beside it, is flushed to disk, and is renamed over the final name.
public enum AtomicFile {
    public static func write(
        to path: String, _ body: (inout FileSink) throws -> Void
    ) throws {
        let temporary = "\(path).tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw SafetensorsError(file: path, .io, "cannot create \(temporary): \(String(cString: strerror(errno)))")
        }
        var sink = FileSink(fd: fd, path: path)
        do {
            try body(&sink)
            guard fsync(fd) == 0 else {
                throw SafetensorsError(file: path, .io, "fsync failed: \(String(cString: strerror(errno)))")
            }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw SafetensorsError(file: path, .io, "cannot rename \(temporary) into place: \(reason)")
        }
        try syncDirectory(containing: path)
    }

    /// fsyncs the folder holding `path`, so that a rename into it survives a crash (the rename is an
    /// entry in the folder, which the file's own fsync does not make durable).
    public static func syncDirectory(containing path: String) throws {
        let slash = path.lastIndex(of: "/")
        let folder = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            throw SafetensorsError(file: path, .io, "cannot open folder \(folder) to sync it: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        // EINVAL: a file system that cannot sync folders (some network ones); nothing more can be done there.
        guard fsync(fd) == 0 || errno == EINVAL else {
            throw SafetensorsError(file: path, .io, "fsync of folder \(folder) failed: \(String(cString: strerror(errno)))")
        }
    }

    /// Writes `bytes` atomically.
    public static func write(_ bytes: [UInt8], to path: String) throws {
        try write(to: path) { (sink: inout FileSink) throws in
            try bytes.withUnsafeBytes { (p: UnsafeRawBufferPointer) throws in try sink.write(p) }
        }
    }
}
