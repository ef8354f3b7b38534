import Foundation
import SubspaceAnalysis
import SubspaceCore
import SubspaceDistributed
import SubspaceModel
import SubspaceTraining

/// The heads study (seed 003): full fine-tuning (FFT) and LoRA from the same base on the same SFT data,
/// per seed; per head, importance before (the base) and after (each tuned model) on a fixed evaluation
/// set, plasticity at the base over training data, and the update each method made; statistics per
/// seed and over seeds; tables and a report. Every step is a collective over the world communicator.
public struct HeadsStudy {
    public let config: HeadsStudyConfig
    public let context: StudyContext
    /// The command line that made the study, for the report.
    public let command: String

    public init(config: HeadsStudyConfig, context: StudyContext, command: String) {
        self.config = config
        self.context = context
        self.command = command
    }

    var world: any Communicator { context.world }

    /// Runs the study; returns the results on every rank (rank 0 writes the files).
    @discardableResult
    public func run() throws -> HeadsResults {
        let c = config
        let runs = RunStages(output: c.output, context: context)
        try makeSFTData()
        let sftOverrides = ["data.kind=sft", "data.path=\(c.sftPath)"]

        // Base model.
        let basePath: String
        var upstream: [RunStages.Done] = []
        if let model = c.baseModel {
            basePath = model
        } else {
            let base = try runs.train("base", config: c.baseRun.config, overrides: c.baseRun.set)
            basePath = base.final
            upstream = [base]
        }
        let fromBase = ["model.source=hf", "model.path=\(basePath)"] + sftOverrides

        // Training runs: each method's own learning-rate sweep (`Sweep`: bracketed where the grid allows),
        // then the chosen rate over every seed; those runs are the ones measured.
        var sweeps: [SweepResult] = []
        func sweep(_ method: String, _ run: HeadsStudyConfig.Run) throws -> [UInt64: String] {
            var settings = HeadsStudyConfig.sweep(run, seeds: c.seeds)
            if settings.learningRates.isEmpty {
                let lr = Double(try TrainConfig.load(path: run.config, overrides: run.set + fromBase).training.learningRate)
                settings = SweepSettings(learningRates: [lr], maxExtensions: 0, seeds: c.seeds)
            }
            let result = try Sweep.run(method: method, settings: settings) { lr, seed in
                let done = try runs.train("\(method)/lr-\(String(format: "%.3g", lr))/seed-\(seed)", config: run.config,
                                          overrides: run.set + fromBase + ["run.seed=\(seed)", "training.learning_rate=\(lr)",
                                                                           "training.min_learning_rate=\(lr / 10)"], after: upstream)
                return (done.folder, try runs.finalMetric(done.folder))
            }
            sweeps.append(result)
            context.say("\(method): learning rate \(String(format: "%.3g", result.bestLearningRate)) (\(result.note)); val loss \(result.score?.formatted(4) ?? "–")")
            return Dictionary(uniqueKeysWithValues: result.seedRuns.map { ($0.seed, ($0.folder as NSString).appendingPathComponent("final")) })
        }
        let fftRuns = try sweep("fft", c.fft)
        let loraRuns = try sweep("lora", c.lora)
        let finals: [(seed: UInt64, fft: String, lora: String)] = c.seeds.map { ($0, fftRuns[$0]!, loraRuns[$0]!) }

        // Data for the measurements, from the FFT config (tokenizer, sequence length).
        let trainConfig = try TrainConfig.load(path: c.fft.config, overrides: c.fft.set + fromBase)
        let tokenizer = try Tokenizers.load(trainConfig.data.tokenizer)
        let sequence = trainConfig.data.sequence
        let trainSet = try SFTDataset(file: (c.sftPath as NSString).appendingPathComponent("train.jsonl"), tokenizer: tokenizer, sequence: sequence)
        let testPath = (c.sftPath as NSString).appendingPathComponent("test.jsonl")
        let evalSet = FileManager.default.fileExists(atPath: testPath)
            ? try SFTDataset(file: testPath, tokenizer: tokenizer, sequence: sequence) : trainSet
        let options = HeadImportance.Options(microBatch: c.microBatch, ablation: true)
        let started = Date()

        let base = try HFCheckpoint.load(folder: basePath)
        context.say("measuring the base: importance on \(min(c.evaluationSequences, evalSet.count)) evaluation sequences, plasticity on \(min(c.plasticitySequences, trainSet.count)) training sequences")
        let before = try HeadImportance.measure(model: base, samples: evalSet, count: c.evaluationSequences, options: options, communicator: world)
        let plasticity = try HeadImportance.measure(model: base, samples: trainSet, count: c.plasticitySequences,
                                                    options: .init(microBatch: c.microBatch, ablation: false), communicator: world)
        var seeds: [HeadsResults.Seed] = []
        for f in finals {
            context.say("measuring seed \(f.seed): importance after FFT and LoRA, per-head updates")
            let tuned = try HFCheckpoint.load(folder: f.fft)
            let fftAfter = try HeadImportance.measure(model: tuned, samples: evalSet, count: c.evaluationSequences, options: options, communicator: world)
            let fftUpdate = try HeadUpdateMeasure.fullFineTuning(base: base, tuned: tuned, communicator: world)
            let adapted = try HFCheckpoint.load(folder: basePath)
            let adapters = try PEFTAdapter.load(folder: f.lora, for: adapted.config)
            adapted.adapters = adapters
            let loraAfter = try HeadImportance.measure(model: adapted, samples: evalSet, count: c.evaluationSequences, options: options, communicator: world)
            let loraUpdate = try HeadUpdateMeasure.lora(base: base, adapters: adapters, communicator: world)
            seeds.append(HeadsResults.Seed(
                seed: f.seed,
                fft: .init(after: fftAfter, update: fftUpdate, finalValidationLoss: try runs.finalMetric((f.fft as NSString).deletingLastPathComponent)),
                lora: .init(after: loraAfter, update: loraUpdate, finalValidationLoss: try runs.finalMetric((f.lora as NSString).deletingLastPathComponent))))
        }
        let measureSeconds = Date().timeIntervalSince(started)
        var results = HeadsResults(command: command, base: basePath, layers: base.config.layerCount, heads: base.config.headCount,
                                   keyValueHeads: base.config.keyValueHeadCount, family: base.config.family.rawValue,
                                   evaluationSequences: before.sequences, plasticitySequences: plasticity.sequences,
                                   before: before, plasticity: plasticity, seeds: seeds, measureSeconds: measureSeconds,
                                   worldSize: world.size)
        results.sweeps = sweeps
        results.statistics = HeadsStatistics.compute(results, config: c)
        try context.onRoot("writing the heads report") {
            let files = try HeadsReport.write(results, config: c)
            for f in files { context.say("wrote \(f)") }
        }
        return results
    }

    /// The SFT data folder, made by rank 0 with the default generator when it is missing.
    func makeSFTData() throws {
        let train = (config.sftPath as NSString).appendingPathComponent("train.jsonl")
        if context.isRoot && !FileManager.default.fileExists(atPath: train) {
            context.say("SFT data: generating \(config.sftTrain) + \(config.sftTest) examples into \(config.sftPath)")
            _ = try SFTGenerator(seed: config.sftSeed).write(to: config.sftPath, train: config.sftTrain, test: config.sftTest)
        }
        try world.barrier()
    }
}

/// Everything the study measured, per head as [layer][head].
public struct HeadsResults: Codable, Sendable {
    public struct Method: Codable, Sendable {
        public var after: HeadScores
        public var update: HeadUpdates
        public var finalValidationLoss: Double
    }
    public struct Seed: Codable, Sendable {
        public var seed: UInt64
        public var fft: Method
        public var lora: Method
    }

    public var command: String
    public var base: String
    public var layers: Int
    public var heads: Int
    public var keyValueHeads: Int
    public var family: String
    public var evaluationSequences: Int
    public var plasticitySequences: Int
    /// Importance of the base on the evaluation set.
    public var before: HeadScores
    /// Gate gradient and Fisher of the base over training data (`gradient`, `fisher`, `taylor`).
    public var plasticity: HeadScores
    public var seeds: [Seed]
    public var measureSeconds: Double
    public var worldSize: Int
    public var statistics: HeadsStatistics.Summary? = nil
    /// Each method's learning-rate sweep (FFT, then LoRA).
    public var sweeps: [SweepResult]? = nil
}
