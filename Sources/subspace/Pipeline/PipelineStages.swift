import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel
import SubspaceTraining

/// The pipeline's stages, each a collective over the world communicator. A stage whose outputs exist and
/// match its inputs (a `stage.json` marker holding a digest of its resolved configuration) is skipped;
/// a training stage interrupted half-way resumes from its checkpoints.
struct PipelineStages {
    let config: PipelineConfig
    let job: RankedJob

    var world: any Communicator { job.world }
    func path(_ parts: String...) -> String { parts.reduce(config.output) { ($0 as NSString).appendingPathComponent($1) } }

    /// Token shards from the corpus text (rank 0), unless valid shards exist.
    func corpus() throws {
        let shards = config.corpusShards
        if job.isRoot, (try? TokenShards(folder: shards)) == nil {
            guard FileManager.default.fileExists(atPath: config.corpusText) else {
                throw PipelineConfig.Problem(description: "corpus.text: \(config.corpusText) does not exist; run launch/fetch-corpus \(config.corpusText) first")
            }
            let builder = try CorpusBuilder(tokenizer: config.tokenizer, validationFraction: config.validationFraction)
            let manifest = try builder.build(input: config.corpusText, output: shards)
            job.log("corpus: \(manifest.sources.count) files → \(manifest.train.tokens) train and \(manifest.validation.tokens) validation tokens in \(shards)")
        } else {
            job.log("corpus: \(shards) is ready")
        }
        try world.barrier()
    }

    /// The SFT set (rank 0), unless it exists.
    func sftData() throws {
        let train = (config.sftPath as NSString).appendingPathComponent("train.jsonl")
        let test = (config.sftPath as NSString).appendingPathComponent("test.jsonl")
        if job.isRoot, !(FileManager.default.fileExists(atPath: train) && FileManager.default.fileExists(atPath: test)) {
            let sets = try SFTGenerator(seed: config.sftSeed).write(to: config.sftPath, train: config.sftTrain, test: config.sftTest)
            job.log("sft: \(sets.train.count) train and \(sets.test.count) test examples in \(config.sftPath)")
        } else {
            job.log("sft: \(config.sftPath) is ready")
        }
        try world.barrier()
    }

    /// Trains one stage into `output/<name>` unless its marker says it is done with this configuration.
    /// Returns the run folder.
    @discardableResult
    func train(_ name: String, _ stage: PipelineConfig.Stage, extra: [String]) throws -> String {
        let runFolder = path(name)
        let overrides = stage.overrides + extra + ["run.output=\(runFolder)"]
        let trainConfig = try TrainConfig.load(path: stage.config, overrides: overrides)
        try trainConfig.validate(worldSize: world.size)
        try trainConfig.validateFiles()
        let resolved = trainConfig.resolvedYAML()
        let digest = SHA256.hex(Array(resolved.utf8))
        let marker = (runFolder as NSString).appendingPathComponent("stage.json")
        if let data = FileManager.default.contents(atPath: marker),
           let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any], json["config_sha256"] as? String == digest,
           FileManager.default.fileExists(atPath: (runFolder as NSString).appendingPathComponent("final")) {
            job.log("\(name): done earlier (\(runFolder)), skipped")
            return runFolder
        }
        job.log("\(name): training → \(runFolder)")
        if job.isRoot {
            try FileManager.default.createDirectory(atPath: runFolder, withIntermediateDirectories: true)
            try resolved.write(toFile: (runFolder as NSString).appendingPathComponent("config.resolved.yaml"), atomically: true, encoding: .utf8)
        }
        try world.barrier()
        let progress = Progress(job: job, totalSteps: trainConfig.training.steps)
        let trainer = try Trainer(config: trainConfig, communicator: world, report: { progress.handle($0) })
        if job.isRoot { progress.metrics = try MetricsLog(folder: runFolder, resumeStep: try trainer.resumePointStep()) }
        let started = Date()
        try trainer.run()
        try trainer.exportFinal(to: (runFolder as NSString).appendingPathComponent("final"))
        if job.isRoot {
            let record: [String: Any] = ["stage": name, "config_sha256": digest, "seconds": Date().timeIntervalSince(started), "ranks": world.size]
            try AtomicFile.write([UInt8](try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])), to: marker)
        }
        try world.barrier()
        return runFolder
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
