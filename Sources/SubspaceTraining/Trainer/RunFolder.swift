import Foundation
import SubspaceCore
import SubspaceModel

/// A run folder (`run.output`) as one unit, held by rank 0 for the run's life.
///
/// `open` checks the folder and what the run reads against it (a file where the folder should be, a
/// `model.path` inside the folder this run overwrites), creates it and takes its lock: an advisory
/// `flock` on `.lock`, which holds the holder's pid, host and start time. The kernel drops the lock when
/// the process ends however it ends, so a lock file left by a dead process is recognised as stale and
/// taken over (and said so in `notes`), while a live holder makes a second run fail at once, naming it.
///
/// Nothing else is written until `commit`, which the caller runs once every check has passed (config,
/// model, data, the checkpoint to resume and its lineage): it refuses to start afresh over an earlier
/// run's work or to mix runs of different lineages in one folder, then writes `config.resolved.yaml`
/// and `lineage.json`.
public final class RunFolder {
    public static let lockName = ".lock"
    public let path: String
    /// What the caller should tell the user (a stale lock taken over).
    public private(set) var notes: [String] = []
    private var lockDescriptor: Int32 = -1

    /// Checks `config.run.output`, creates it and takes its lock. `file` names the config in errors.
    public init(config: TrainConfig, file: String? = nil) throws {
        path = config.run.output
        let files = FileManager.default
        var isFolder: ObjCBool = false
        if files.fileExists(atPath: path, isDirectory: &isFolder), !isFolder.boolValue {
            throw ConfigError(.file, source: file, key: "run.output", "\(path) is a file, not a folder")
        }
        try Self.checkInputs(config: config, file: file)
        do {
            try files.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw ConfigError(.file, source: file, key: "run.output", "cannot create the folder \(path): \(FileSystemMessage.reason(error))")
        }
        try lock(file: file)
    }

    deinit { release() }

    /// Clears the holder and drops the lock (the process's exit drops it too, leaving the holder written,
    /// which the next run reports as stale). Call it when the run ends: `exit` skips `deinit`.
    public func release() {
        guard lockDescriptor >= 0 else { return }
        _ = ftruncate(lockDescriptor, 0)
        close(lockDescriptor)
        lockDescriptor = -1
    }

    /// Outputs never overwrite inputs: `model.path` (and `lora.factors`) must not lie where this run
    /// writes (the folder itself, its final/ or checkpoints/).
    static func checkInputs(config: TrainConfig, file: String?) throws {
        let output = RunLineage.absolute(config.run.output)
        let written = [output + "/final", output + "/checkpoints", output + "/base"]
        func inside(_ path: String) -> Bool {
            let p = RunLineage.absolute(path)
            return p == output || written.contains { p == $0 || p.hasPrefix($0 + "/") }
        }
        if config.model.source == .hf, let model = config.model.path, inside(model) {
            throw ConfigError(.value, source: file, key: "model.path",
                              "\(model) lies inside run.output \(config.run.output), whose final/ and checkpoints/ this run writes: "
                              + "it would overwrite the model it loads; choose another run.output", related: ["run.output"])
        }
        if let factors = config.lora?.factors, inside(factors) {
            throw ConfigError(.value, source: file, key: "lora.factors",
                              "\(factors) lies inside run.output \(config.run.output), which this run writes; choose another run.output",
                              related: ["run.output"])
        }
    }

    /// `flock` on `.lock`; a held lock names its holder.
    private func lock(file: String?) throws {
        let lockPath = (path as NSString).appendingPathComponent(Self.lockName)
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw ConfigError(.file, source: file, key: "run.output", "cannot write \(lockPath): \(String(cString: strerror(errno)))")
        }
        let previous = Self.contents(fd)
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(fd)
            if code == EWOULDBLOCK {
                let holder = previous.isEmpty ? "another process" : previous
                throw ConfigError(.file, source: file, key: "run.output",
                                  "\(path) is in use by another run (\(holder)); wait for it to end or choose another run.output")
            }
            throw ConfigError(.file, source: file, key: "run.output", "cannot lock \(lockPath): \(String(cString: strerror(code)))")
        }
        if !previous.isEmpty {
            notes.append("run.output \(path): took over a stale lock (\(previous)), whose process is no longer running")
        }
        let me = "pid \(getpid()) on host \(ProcessInfo.processInfo.hostName) since \(ISO8601DateFormatter().string(from: Date()))"
        _ = ftruncate(fd, 0)
        _ = Array(me.utf8).withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        lockDescriptor = fd
    }

    private static func contents(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = pread(fd, &buffer, buffer.count, 0)
        guard n > 0 else { return "" }
        return String(decoding: buffer[..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// What an earlier run left here that a new start would damage: final/, completed checkpoints, metrics.
    public func earlierWork() -> [String] {
        let files = FileManager.default
        var out: [String] = []
        if files.fileExists(atPath: (path as NSString).appendingPathComponent("final")) { out.append("final/") }
        let checkpoints = CheckpointStore(folder: (path as NSString).appendingPathComponent("checkpoints")).completed()
        if !checkpoints.isEmpty { out.append("\(checkpoints.count) checkpoint\(checkpoints.count == 1 ? "" : "s") (up to step \(checkpoints.last!.step))") }
        let metrics = (path as NSString).appendingPathComponent("metrics.jsonl")
        if let size = (try? files.attributesOfItem(atPath: metrics))?[.size] as? Int, size > 0 { out.append("metrics.jsonl") }
        return out
    }

    /// After every check has passed: refuses a fresh start (`start` 0) over an earlier run's work and a run
    /// of another lineage in a folder that holds work, then writes `config.resolved.yaml` and `lineage.json`.
    public func commit(config: TrainConfig, lineage: RunLineage, start: Int, file: String? = nil) throws {
        let earlier = earlierWork()
        if start == 0, !earlier.isEmpty {
            let how = config.checkpoint.resume == .never ? "checkpoint.resume is never, but" : "there is no checkpoint to resume, but"
            throw ConfigError(.value, source: file, key: "checkpoint.resume",
                              "\(how) run.output \(path) holds an earlier run (\(earlier.joined(separator: ", "))), which a fresh "
                              + "start would overwrite; choose another run.output, or remove those first", related: ["run.output"])
        }
        let lineagePath = (path as NSString).appendingPathComponent(RunLineage.fileName)
        if !earlier.isEmpty, !config.checkpoint.allowOtherLineage, let recorded = RunLineage(file: lineagePath), recorded != lineage {
            throw ConfigError(.value, source: file, key: "run.output",
                              "\(path) holds a run of another lineage: " + lineage.differences(from: recorded).joined(separator: "; ")
                              + "; choose another run.output, or set checkpoint.allow_other_lineage: true to continue it anyway",
                              related: ["checkpoint.allow_other_lineage"])
        }
        do {
            try config.resolvedYAML().write(toFile: (path as NSString).appendingPathComponent("config.resolved.yaml"), atomically: true, encoding: .utf8)
            try lineage.json.write(toFile: lineagePath, atomically: true, encoding: .utf8)
        } catch {
            throw ConfigError(.file, source: file, key: "run.output", "cannot write into \(path): \(FileSystemMessage.reason(error))")
        }
    }
}
