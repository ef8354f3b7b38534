import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceTraining

/// The runs of a study inside its output folder, each a collective over the world communicator. A run
/// whose folder holds a `stage.json` marker with the same lineage — a digest of its resolved training
/// configuration and of the lineages of the runs it reads — and `complete: true` is skipped, so changing
/// an upstream run reruns what depends on it; a run interrupted half-way resumes from its checkpoints.
/// Every decision that could differ between ranks (done or not, a final loss) is made on rank 0 and
/// broadcast, so all ranks take the same collective path even where the file system shows them
/// different things.
public struct RunStages {
    public let output: String
    public let context: StudyContext

    /// A finished run: its folder and lineage digest.
    public struct Done: Sendable, Equatable {
        public let folder: String
        public let lineage: String
        public init(folder: String, lineage: String) { self.folder = folder; self.lineage = lineage }
        /// `folder/final`: the HF model (full training) or PEFT adapter (LoRA) the run exported.
        public var final: String { (folder as NSString).appendingPathComponent("final") }
    }

    public init(output: String, context: StudyContext) {
        self.output = output
        self.context = context
    }

    var world: any Communicator { context.world }
    var isRoot: Bool { context.isRoot }

    public func path(_ parts: String...) -> String { parts.reduce(output) { ($0 as NSString).appendingPathComponent($1) } }

    /// A lineage digest of `text` and the upstream lineages.
    public static func lineage(_ text: String, after upstream: [Done] = []) -> String {
        SHA256.hex(Array((text + upstream.map(\.lineage).joined(separator: ",")).utf8))
    }

    func marker(_ folder: String) -> [String: Any]? {
        guard let data = FileManager.default.contents(atPath: (folder as NSString).appendingPathComponent("stage.json")) else { return nil }
        return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    }

    /// Whether `folder` holds the finished outputs of `lineage` (and `required` files), decided on rank 0
    /// and broadcast.
    public func isDone(_ folder: String, lineage: String, required: [String] = []) throws -> Bool {
        var flag: [Int32] = [0]
        if isRoot, let m = marker(folder), m["lineage"] as? String == lineage, m["complete"] as? Bool == true,
           required.allSatisfy({ FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent($0)) }) {
            // A required folder whose tensor files do not open (truncated, replaced) is not done: it is redone.
            if let damage = required.lazy.compactMap({ Self.damage((folder as NSString).appendingPathComponent($0)) }).first {
                context.say("\(folder): \(damage); running it again")
            } else {
                flag[0] = 1
            }
        }
        try world.broadcast(&flag, root: 0)
        return flag[0] == 1
    }

    /// Why the safetensors files in `path` (a folder, or one file) do not open, or nil when they all do.
    static func damage(_ path: String) -> String? {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { return "\(path) is missing" }
        let files = isFolder.boolValue
            ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasSuffix(".safetensors") }
                .map { (path as NSString).appendingPathComponent($0) }
            : [path].filter { $0.hasSuffix(".safetensors") }
        if isFolder.boolValue, files.isEmpty { return "\(path) holds no .safetensors file" }
        for file in files {
            do { _ = try SafetensorsFile(path: file) } catch { return "\(file) is damaged (\(error))" }
        }
        return nil
    }

    /// Before a run (rank 0): outputs of another lineage, or of unknown origin, are removed so nothing
    /// stale is resumed from; an interrupted run of the same lineage is kept and resumes.
    public func prepare(_ folder: String, name: String, lineage: String) throws {
        try context.onRoot("preparing \(folder)") {
            if FileManager.default.fileExists(atPath: folder), marker(folder)?["lineage"] as? String != lineage {
                try FileManager.default.removeItem(atPath: folder)
            }
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try record(folder, ["stage": name, "lineage": lineage, "complete": false, "ranks": world.size])
        }
    }

    /// Records that `folder` holds the finished outputs of `lineage` (rank 0).
    public func markDone(_ folder: String, name: String, lineage: String, seconds: Double) throws {
        try context.onRoot("marking \(folder) done") {
            try record(folder, ["stage": name, "lineage": lineage, "complete": true, "seconds": seconds, "ranks": world.size])
        }
    }

    func record(_ folder: String, _ fields: [String: Any]) throws {
        try AtomicFile.write([UInt8](try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])),
                             to: (folder as NSString).appendingPathComponent("stage.json"))
    }

    /// Trains `name` into `output/<name>` from the training config file `config` with `overrides`
    /// (plus `run.output`), unless it is done with this configuration and these inputs.
    @discardableResult
    public func train(_ name: String, config: String, overrides: [String], after upstream: [Done] = []) throws -> Done {
        let runFolder = path(name)
        let trainConfig = try TrainConfig.load(path: config, overrides: overrides + ["run.output=\(runFolder)"])
        try trainConfig.validate(worldSize: world.size)
        try trainConfig.validateFiles()
        let resolved = trainConfig.resolvedYAML()
        let lineage = Self.lineage(resolved, after: upstream)
        if try isDone(runFolder, lineage: lineage, required: ["final"]) {
            context.say("\(name): done earlier (\(runFolder)), skipped")
            return Done(folder: runFolder, lineage: lineage)
        }
        try prepare(runFolder, name: name, lineage: lineage)
        context.say("\(name): training → \(runFolder)")
        try context.onRoot("writing \(runFolder)/config.resolved.yaml") {
            try resolved.write(toFile: (runFolder as NSString).appendingPathComponent("config.resolved.yaml"), atomically: true, encoding: .utf8)
        }
        let display = context.trainingDisplay(name, trainConfig.training.steps)
        var metrics: MetricsLog? = nil
        let trainer = try Trainer(config: trainConfig, communicator: try context.wrap(world, runFolder), report: { event in
            switch event {
            case .step(let m): metrics?.append(m)
            case .evaluation(let e): metrics?.append(e)
            default: break
            }
            display(event)
        })
        if isRoot { metrics = try MetricsLog(folder: runFolder, resumeStep: try trainer.resumePointStep()) }
        let started = Date()
        try trainer.run()
        try trainer.exportFinal(to: (runFolder as NSString).appendingPathComponent("final"))
        metrics = nil  // closes metrics.jsonl before it is read
        try markDone(runFolder, name: name, lineage: lineage, seconds: Date().timeIntervalSince(started))
        return Done(folder: runFolder, lineage: lineage)
    }

    /// The last value of `key` (default `val_loss`) in a run's metrics.jsonl, read on rank 0 and broadcast
    /// (NaN when there is none).
    public func finalMetric(_ run: String, key: String = "val_loss") throws -> Double {
        var value: [Double] = [.nan]
        if isRoot, let v = Self.lastMetric(run, key: key) { value[0] = v }
        try world.broadcast(&value, root: 0)
        return value[0]
    }

    /// The last value of `key` in `run/metrics.jsonl` (this rank's view of the file).
    public static func lastMetric(_ run: String, key: String = "val_loss") -> Double? {
        metricSeries(run, key: key).last?.value
    }

    /// Every (step, value) of `key` in `run/metrics.jsonl`, in file order.
    public static func metricSeries(_ run: String, key: String) -> [(step: Int, value: Double)] {
        guard let text = try? String(contentsOfFile: (run as NSString).appendingPathComponent("metrics.jsonl"), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let step = o["step"] as? Int, let v = (o[key] as? Double) ?? (o[key] as? Int).map(Double.init) else { return nil }
            return (step, v)
        }
    }
}

extension SHA256 {
    public static func hex(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { hex($0) } }
}
