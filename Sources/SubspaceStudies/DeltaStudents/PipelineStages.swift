import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel
import SubspaceTraining

/// The pipeline's stages, each a collective over the world communicator. A stage whose outputs exist and
/// whose `stage.json` marker holds the same lineage — a digest of its resolved configuration and of the
/// lineages of the stages it reads — is skipped, so changing a teacher reruns the analysis and students
/// after it; a training stage interrupted half-way resumes from its checkpoints.
struct PipelineStages {
    let config: PipelineConfig
    let context: StudyContext

    var world: any Communicator { context.world }
    var isRoot: Bool { context.isRoot }
    func log(_ line: String) { context.say(line) }
    func path(_ parts: String...) -> String { parts.reduce(config.output) { ($0 as NSString).appendingPathComponent($1) } }

    /// Token shards from the corpus text (rank 0), unless valid shards exist.
    func corpus() throws {
        let shards = config.corpusShards
        if isRoot, (try? TokenShards(folder: shards)) == nil {
            guard FileManager.default.fileExists(atPath: config.corpusText) else {
                throw PipelineConfig.Problem(description: "corpus.text: \(config.corpusText) does not exist; run launch/fetch-corpus \(config.corpusText) first")
            }
            let builder = try CorpusBuilder(tokenizer: config.tokenizer, validationFraction: config.validationFraction)
            let manifest = try builder.build(input: config.corpusText, output: shards)
            log("corpus: \(manifest.sources.count) files → \(manifest.train.tokens) train and \(manifest.validation.tokens) validation tokens in \(shards)")
        } else {
            log("corpus: \(shards) is ready")
        }
        try world.barrier()
    }

    /// The SFT set (rank 0), unless it exists.
    func sftData() throws {
        let train = (config.sftPath as NSString).appendingPathComponent("train.jsonl")
        let test = (config.sftPath as NSString).appendingPathComponent("test.jsonl")
        if isRoot, !(FileManager.default.fileExists(atPath: train) && FileManager.default.fileExists(atPath: test)) {
            let sets = try SFTGenerator(seed: config.sftSeed).write(to: config.sftPath, train: config.sftTrain, test: config.sftTest)
            log("sft: \(sets.train.count) train and \(sets.test.count) test examples in \(config.sftPath)")
        } else {
            log("sft: \(config.sftPath) is ready")
        }
        try world.barrier()
    }

    /// A finished stage: its folder and lineage digest.
    struct Done { let folder: String; let lineage: String }

    func marker(_ folder: String) -> [String: Any]? {
        guard let data = FileManager.default.contents(atPath: (folder as NSString).appendingPathComponent("stage.json")) else { return nil }
        return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    }

    /// Whether `folder` holds the finished outputs of `lineage`.
    func isDone(_ folder: String, lineage: String) -> Bool {
        guard let m = marker(folder) else { return false }
        return m["lineage"] as? String == lineage && m["complete"] as? Bool == true
    }

    /// Before a stage runs (rank 0): outputs of another lineage, or of unknown origin, are removed so
    /// nothing stale is resumed from; an interrupted run of the same lineage is kept and resumes.
    func prepare(_ folder: String, name: String, lineage: String) throws {
        if isRoot {
            if FileManager.default.fileExists(atPath: folder), marker(folder)?["lineage"] as? String != lineage {
                try FileManager.default.removeItem(atPath: folder)
            }
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try record(folder, ["stage": name, "lineage": lineage, "complete": false, "ranks": world.size])
        }
        try world.barrier()
    }

    /// Records that `folder` holds the finished outputs of `lineage` (rank 0).
    func markDone(_ folder: String, name: String, lineage: String, seconds: Double) throws {
        guard isRoot else { return }
        try record(folder, ["stage": name, "lineage": lineage, "complete": true, "seconds": seconds, "ranks": world.size])
    }

    func record(_ folder: String, _ fields: [String: Any]) throws {
        try AtomicFile.write([UInt8](try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])),
                             to: (folder as NSString).appendingPathComponent("stage.json"))
    }

    /// Trains one stage into `output/<name>` unless it is done with this configuration and these inputs.
    @discardableResult
    func train(_ name: String, _ stage: PipelineConfig.Stage, extra: [String], after upstream: [Done] = []) throws -> Done {
        let runFolder = path(name)
        let overrides = stage.overrides + extra + ["run.output=\(runFolder)"]
        let trainConfig = try TrainConfig.load(path: stage.config, overrides: overrides)
        try trainConfig.validate(worldSize: world.size)
        try trainConfig.validateFiles()
        let resolved = trainConfig.resolvedYAML()
        let lineage = SHA256.hex(Array((resolved + upstream.map(\.lineage).joined(separator: ",")).utf8))
        if isDone(runFolder, lineage: lineage), FileManager.default.fileExists(atPath: (runFolder as NSString).appendingPathComponent("final")) {
            log("\(name): done earlier (\(runFolder)), skipped")
            return Done(folder: runFolder, lineage: lineage)
        }
        try prepare(runFolder, name: name, lineage: lineage)
        log("\(name): training → \(runFolder)")
        if isRoot {
            try resolved.write(toFile: (runFolder as NSString).appendingPathComponent("config.resolved.yaml"), atomically: true, encoding: .utf8)
        }
        try world.barrier()
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
        try markDone(runFolder, name: name, lineage: lineage, seconds: Date().timeIntervalSince(started))
        try world.barrier()
        return Done(folder: runFolder, lineage: lineage)
    }

    /// The final validation loss recorded in a run's metrics.jsonl.
    static func finalValidationLoss(_ run: String) -> Double? {
        guard let text = try? String(contentsOfFile: (run as NSString).appendingPathComponent("metrics.jsonl"), encoding: .utf8) else { return nil }
        return text.split(separator: "\n").compactMap { line -> Double? in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["val_loss"] as? Double
        }.last
    }
}

extension SHA256 {
    static func hex(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { hex($0) } }
}
