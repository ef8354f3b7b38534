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

    /// Lineage-based skip/resume of the training runs and stages (shared by every study).
    var runs: RunStages { RunStages(output: config.output, context: context) }
    typealias Done = RunStages.Done

    func isDone(_ folder: String, lineage: String) throws -> Bool { try runs.isDone(folder, lineage: lineage) }
    func prepare(_ folder: String, name: String, lineage: String) throws { try runs.prepare(folder, name: name, lineage: lineage) }
    func markDone(_ folder: String, name: String, lineage: String, seconds: Double) throws {
        try runs.markDone(folder, name: name, lineage: lineage, seconds: seconds)
    }

    /// Trains one stage into `output/<name>` unless it is done with this configuration and these inputs.
    @discardableResult
    func train(_ name: String, _ stage: PipelineConfig.Stage, extra: [String], after upstream: [Done] = []) throws -> Done {
        do {
            return try runs.train(name, config: stage.config, overrides: stage.overrides + extra, after: upstream)
        } catch var error as ConfigError {
            // An override from the pipeline config is named as the user wrote it: the stage's `set:` entry.
            if let source = error.source, let entry = stage.overrides.first(where: { "--set \($0)" == source }) {
                let section = [("base", config.base), ("teacher", config.teacher), ("students", config.students)]
                    .first { $0.1.config == stage.config && $0.1.overrides == stage.overrides }?.0 ?? name
                error.source = "pipeline \(section).set entry '\(entry)'"
            }
            throw error
        }
    }

    /// The final validation loss recorded in a run's metrics.jsonl (rank 0's view, broadcast).
    func finalValidationLoss(_ run: String) throws -> Double { try runs.finalMetric(run) }
}
