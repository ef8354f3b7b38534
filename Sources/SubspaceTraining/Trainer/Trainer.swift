import Foundation
import Synchronization
import SubspaceCore
import SubspaceDistributed
import SubspaceModel

/// Set by SIGTERM (a cluster's preemption): the run saves a checkpoint at the next step and stops.
let terminationRequested = Atomic<Bool>(false)

/// A full training run from a `TrainConfig`, data-parallel over a communicator: model set-up (new or HF,
/// frozen tensors, LoRA), data and the global sample order, ZeRO, resume, the step loop with evaluation
/// and checkpoints, and the final HF model or PEFT adapter. Every rank runs the same code; only rank 0
/// writes shared files. Progress is reported through `report` on every rank (the caller shows rank 0's).
public final class Trainer {
    public let config: TrainConfig
    public let communicator: any Communicator
    public let model: Transformer
    public let engine: ZeroEngine
    let runner: StepRunner
    let data: any TrainingSampleSource
    let validation: (any TrainingSampleSource)?
    let sft: SFTDataset?
    let testExamples: [SFTExample]
    let testSet: SFTDataset?
    let tokenizer: any Tokenizer
    let report: (TrainingEvent) -> Void
    public let schedule: LearningRateSchedule
    /// PiSSA's initial factors: the base now holds W − scale·B₀·A₀, so the exported adapter carries them
    /// to express the change against the original base.
    var pissaStart: [Float]? = nil
    /// What this run is (data, model, shape, trajectory settings): in lineage.json and every checkpoint.
    public let lineage: RunLineage
    public var store: CheckpointStore { CheckpointStore(folder: (config.run.output as NSString).appendingPathComponent("checkpoints")) }

    /// `prepareModel` runs once the model exists (initialised or loaded, frozen tensors and adapters set)
    /// and before the optimizer sees it: the place for a study's own initialisation or freezing (e.g.
    /// orthogonal Q/K), since ZeRO shards whatever the model holds then.
    ///
    /// At ZeRO-3 no rank builds the whole model: the model has no parameter buffer and each rank
    /// initialises (same values as a whole initialisation) or reads from the HF folder only its part of
    /// every block. Three things need the whole model first and keep the old way (whole model, then
    /// shards, then the whole copy freed): a `prepareModel`, and PiSSA or LoRA-Null initialisations
    /// (they change the base weights).
    public init(config: TrainConfig, communicator: any Communicator,
                prepareModel: ((Transformer) throws -> Void)? = nil,
                report: @escaping (TrainingEvent) -> Void = { _ in }) throws {
        self.config = config
        self.communicator = communicator
        self.report = report
        let c = config

        // Sizes first: a run that cannot fit is an error naming the key, not a failed allocation.
        try MemoryEstimate(config: c, model: try c.modelShape(), worldSize: communicator.size).check()
        tokenizer = try Tokenizers.load(c.data.tokenizer)
        let changesBase = c.lora.map { [.pissa, .loraNull].contains($0.initialisation) } ?? false
        let sharded = c.training.zeroStage == 3 && prepareModel == nil && !changesBase
        var reader: HFModelReader? = nil
        switch c.model.source {
        case .hf:
            guard let path = c.model.path else { throw TrainingError.configuration("model.path: required when model.source is hf") }
            let opened = try HFModelReader(folder: path)  // names and shapes checked; no weight read yet
            model = Transformer(config: opened.config)
            if sharded { reader = opened } else { try opened.read(0..<model.layout.totalCount, into: model.parameterStorage.pointer) }
        case .new:
            let modelConfig = ModelConfig(family: c.model.family, vocabularySize: c.model.vocab, hiddenSize: c.model.width,
                                          layerCount: c.model.layers, headCount: c.model.heads, keyValueHeadCount: c.model.kvHeads,
                                          intermediateSize: c.model.intermediate, maxPositions: c.model.context)
            let problems = modelConfig.problems()
            guard problems.isEmpty else { throw TrainingError.configuration("model: " + problems.joined(separator: "; ")) }
            model = Transformer(config: modelConfig)
            if !sharded { model.initialize(seed: c.run.seed, std: c.model.initStd) }
        }
        guard tokenizer.vocabularySize <= model.config.vocabularySize else {
            throw TrainingError.configuration("data.tokenizer: its vocabulary (\(tokenizer.vocabularySize)) does not fit the model's (\(model.config.vocabularySize))")
        }
        guard c.data.sequence <= model.config.maxPositions else {
            throw TrainingError.configuration("data.sequence: \(c.data.sequence) exceeds the model's \(model.config.maxPositions) positions")
        }
        model.frozen = try Trainer.frozenTensors(c.training.freeze, layout: model.layout)
        model.dropout = c.model.dropout
        model.activationCheckpointing = c.training.activationCheckpointing
        if c.training.precision == .bf16 {
            // Refused here, before anything is written, where the CPU has no bf16 instructions.
            do { try BF16GEMM.require("training.precision: bf16") } catch { throw TrainingError.configuration("\(error)") }
        }
        model.precision = c.training.precision
        if let lora = c.lora {
            let names = lora.targets ?? TrainConfig.LoRA.defaultTargets(model.config.family)
            let targets: LoRAConfig.Targets = names.count == 1 && names[0].hasPrefix("re:")
                ? .pattern(String(names[0].dropFirst(3))) : .names(names)
            var adapters: LoRAAdapters
            do {
                adapters = try LoRAAdapters(config: LoRAConfig(rank: lora.rank, alpha: lora.alpha, targets: targets,
                                                               dropout: lora.dropout, useRSLoRA: lora.rslora),
                                            model: model.config, seed: c.run.seed)
            } catch let error as LoRAError {
                throw TrainingError.configuration("lora.targets: \(error.reason)" + (lora.targets == nil ? " (the default for \(model.config.family.rawValue))" : ""))
            }
            switch lora.initialisation {
            case .loraNull:
                guard let path = lora.adapter else { throw TrainingError.configuration("lora.adapter: required for lora-null") }
                let folder = try LoRANull.Folder(folder: path, model: model.config)
                guard let manifest = folder.manifest else {
                    throw TrainingError.configuration("lora.adapter: \(path) has no \(LoRANullManifest.fileName) (not written by `subspace lora-null build`)")
                }
                let built = folder.loaded.config
                guard lora.rank == manifest.rank else {
                    throw TrainingError.configuration("lora.rank: \(lora.rank), but the adapter in \(path) has rank \(manifest.rank)")
                }
                guard lora.alpha == manifest.alpha else {
                    throw TrainingError.configuration("lora.alpha: \(lora.alpha), but the adapter in \(path) was built with alpha \(manifest.alpha)")
                }
                guard targets == built.targets, lora.rslora == built.useRSLoRA else {
                    throw TrainingError.configuration("lora.targets: \(names), but the adapter in \(path) targets \(built.targets) (rslora \(built.useRSLoRA))")
                }
                let prepared = try folder.prepareTraining(model, seed: c.run.seed, dropout: lora.dropout)
                adapters = prepared.adapters
                pissaStart = prepared.initial
            case .random: break
            case .svdDelta:
                guard let factors = lora.factors else { throw TrainingError.configuration("lora.factors: required for svd-delta") }
                try LoRAInitialisation.svdDelta(adapters, factors: factors)
            case .pissa:
                try LoRAInitialisation.pissa(adapters, model: model)
                pissaStart = Array(UnsafeBufferPointer(start: adapters.storage.pointer, count: adapters.totalCount))
            }
            adapters.training = true
            model.adapters = adapters
            model.frozen = Set(model.layout.entries.map(\.role))
        }

        try prepareModel?(model)

        switch c.data.kind {
        case .corpus:
            let shards = try TokenShards(folder: c.data.path)
            try shards.checkFits(vocabularySize: model.config.vocabularySize)
            data = CorpusDataset(shards: shards, split: .train, sequence: c.data.sequence)
            validation = CorpusDataset(shards: shards, split: .validation, sequence: c.data.sequence)
            sft = nil
            testExamples = []
            testSet = nil
        case .sft:
            let chat = try ChatTemplate.resolve(c.data.chatFormat, config: try TokenizerConfig.near(c.data.tokenizer))
            try chat.check(tokenizer, source: c.data.tokenizer)
            let train = try SFTDataset(file: (c.data.path as NSString).appendingPathComponent("train.jsonl"), tokenizer: tokenizer,
                                       sequence: c.data.sequence, chat: chat)
            let testPath = (c.data.path as NSString).appendingPathComponent("test.jsonl")
            let test = FileManager.default.fileExists(atPath: testPath)
                ? try SFTDataset(file: testPath, tokenizer: tokenizer, sequence: c.data.sequence, chat: chat) : nil
            testSet = test
            data = train
            validation = test
            sft = train
            testExamples = test?.examples ?? []
        }
        // Said once (rank 0 shows it): what the data left out, and an evaluation that cannot happen.
        for (file, set) in [("train.jsonl", sft), ("test.jsonl", validation as? SFTDataset)] {
            guard let s = set?.summary, s.droppedLongPrompt > 0 || s.truncated > 0 else { continue }
            report(.info("data: \(file): \(s.droppedLongPrompt) of \(s.examples) examples dropped (prompt longer than data.sequence \(c.data.sequence))"
                         + ", \(s.truncated) truncated (response cut at data.sequence)"))
        }
        if (validation?.count ?? 0) == 0 {
            report(.info("evaluation: off, since data.path has no validation "
                         + (c.data.kind == .corpus ? "tokens (the corpus was built with --validation-fraction 0)" : "examples (test.jsonl is empty)")))
        }
        guard data.count >= c.training.globalBatch else {
            throw TrainingError.configuration("data.path: \(data.count) training sequences of \(c.data.sequence) tokens, fewer than one global batch (\(c.training.globalBatch))")
        }

        engine = ZeroEngine(model: model, communicator: communicator, stage: c.training.zeroStage,
                            adam: AdamW(beta1: c.training.beta1, beta2: c.training.beta2, epsilon: c.training.epsilon,
                                        weightDecay: c.training.weightDecay),
                            maxGradientNorm: c.training.gradClip, bucketBytes: c.training.bucketMB << 20,
                            overlap: c.training.overlapCommunication && MPIEnvironment.current.map { $0.providedThreadLevel >= .serialized } ?? true)
        if sharded {
            // Each rank fills its own shards; all agree on the outcome before anything else is collective.
            var failure = ""
            do {
                if let reader {
                    try engine.loadParameters { try reader.read($0, into: $1) }
                } else {
                    let (seed, std, model) = (c.run.seed, c.model.initStd, model)
                    engine.loadParameters { model.initialValues(seed: seed, std: std, range: $0, into: $1) }
                }
            } catch {
                failure = "\(error)"
            }
            try engine.agree(failure, or: { TrainingError.checkpoint("model.path: \($0)") })
        }
        runner = StepRunner(engine: engine)
        lineage = RunLineage(config: c, model: model.config)
        schedule = LearningRateSchedule(peak: c.training.learningRate, warmupSteps: c.training.warmup, totalSteps: c.training.steps,
                                        minimumRate: c.training.schedule == .cosine ? c.training.minLearningRate : c.training.learningRate)
    }

    /// Tensors named by `patterns` (exact Subspace names or regular expressions); each must match.
    public static func frozenTensors(_ patterns: [String], layout: ParameterLayout) throws -> Set<TensorRole> {
        var out: Set<TensorRole> = []
        for pattern in patterns {
            let regex = try? NSRegularExpression(pattern: "^(?:\(pattern))$")
            let matches = layout.entries.filter { e in
                e.name == pattern || regex?.firstMatch(in: e.name, range: NSRange(e.name.startIndex..., in: e.name)) != nil
            }
            guard !matches.isEmpty else {
                throw TrainingError.configuration("training.freeze: '\(pattern)' matches no tensor (names look like '\(layout.entries[1].name)')")
            }
            out.formUnion(matches.map(\.role))
        }
        return out
    }

    /// The checkpoint to resume from, per `checkpoint.resume`.
    func resumePoint() throws -> String? {
        switch config.checkpoint.resume {
        case .never: return nil
        case .auto: return store.completed().last?.path
        case .path(let p):
            guard FileManager.default.fileExists(atPath: p) else { throw TrainingError.checkpoint("checkpoint.resume: \(p) does not exist") }
            return p
        }
    }

    /// `resumePoint()` as rank 0 sees it, broadcast, so every rank loads the same checkpoint even where
    /// ranks see the run folder differently (a file system that is slow to show a new checkpoint).
    /// Collective. A rank-0 error is raised on every rank.
    func agreedResumePoint() throws -> String? {
        var decision = ""  // "" none, "+path" resume, "!message" error
        if communicator.rank == 0 {
            do { decision = try resumePoint().map { "+" + $0 } ?? "" } catch { decision = "!\(error)" }
        }
        decision = try communicator.broadcast(string: decision, root: 0)
        if decision.hasPrefix("!") { throw TrainingError.checkpoint(String(decision.dropFirst())) }
        return decision.hasPrefix("+") ? String(decision.dropFirst()) : nil
    }

    /// The step the run will resume from (0 for a fresh start), without loading anything: `checkResume()`.
    public func resumePointStep() throws -> Int { try checkResume() }

    /// Checks the checkpoint the run would resume from, reading only its manifest (every rank reads the
    /// same one, so all agree): a valid manifest of this model's shapes, of this run's lineage (unless
    /// `checkpoint.allow_other_lineage`; a checkpoint without one is judged by its folder's lineage.json),
    /// and a step no later than `training.steps`. Returns its step, or 0 for a fresh start.
    public func checkResume() throws -> Int {
        guard let path = try resumePoint() else { return 0 }
        if !config.checkpoint.allowOtherLineage {
            let runFolder = ((path as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
            let theirs = CheckpointStore.recordedLineage(path) ?? RunLineage(file: (runFolder as NSString).appendingPathComponent(RunLineage.fileName))
            if let theirs, theirs != lineage {
                throw TrainingError.checkpoint("checkpoint.resume: \(path) belongs to a run of another lineage: "
                    + lineage.differences(from: theirs).joined(separator: "; ")
                    + "; choose another run.output (or checkpoint.resume: never there), or set checkpoint.allow_other_lineage: true to resume it anyway")
            }
        }
        let manifest = try CheckpointStore.inspect(path, model: model)
        if manifest.step > config.training.steps {
            throw TrainingError.configuration("training.steps: \(config.training.steps) is less than the step \(manifest.step) of the checkpoint "
                + "\(path) this run would resume; raise training.steps to continue it, or start afresh in another run.output")
        }
        return manifest.step
    }

    /// This rank's micro-batches of global step `step` (0-based).
    func microBatches(step: Int, sampler: GlobalSampler) throws -> [MicroBatch] {
        let t = config.training, T = config.data.sequence
        return try sampler.microBatches(step: step, rank: communicator.rank, worldSize: communicator.size, microBatch: t.microBatch).map { indices in
            var ids: [Int32] = [], targets: [Int32] = []
            data.batch(indices, ids: &ids, targets: &targets)
            return MicroBatch(ids: ids, targets: targets, batch: indices.count, sequence: T)
        }
    }

    /// Runs from the start (or the resume point) to `training.steps`. Returns the final step reached.
    @discardableResult
    public func run() throws -> Int {
        let c = config, comm = communicator
        signal(SIGTERM) { _ in terminationRequested.store(true, ordering: .relaxed) }
        var start = 0
        if let checkpoint = try agreedResumePoint() {
            let restored = try CheckpointStore.load(checkpoint, into: engine)
            start = restored.step
            report(.info("resumed from \(checkpoint) at step \(start) (this rank read and checked \(restored.filesRead) of its \(restored.filesWritten) rank files)"))
        }
        let sampler = GlobalSampler(count: data.count, globalBatch: c.training.globalBatch, seed: c.run.seed)
        let report = ParameterReport(model: model)
        self.report(.info("model: \(model.config.family.rawValue), \(model.config.layerCount) layers, width \(model.config.hiddenSize); " +
                          "\(report.total) parameters, \(report.trainable) trainable (\(String(format: "%.2f", report.trainablePercent))%)"))
        if engine.stage < 2 {
            let sizes = engine.buckets.map { bucket in bucket.reduce(0) { $0 + engine.shards[$1].packedCount } * 4 }
            self.report(.info("gradient buckets: \(engine.buckets.count) (≤ \(c.training.bucketMB) MiB each, in backward order): " +
                              zip(engine.buckets, sizes).map { "blocks \($0.0.first!)…\($0.0.last!) \(String(format: "%.2f", Double($0.1) / 1048576)) MiB via \(comm.allReduceAlgorithm(forBytes: $0.1))" }.joined(separator: "; ") +
                              (engine.overlap ? "; reduced on a communication thread during backward" : "; reduced after backward")))
        }
        self.report(.info("data: \(data.count) training sequences of \(c.data.sequence) tokens; global batch \(c.training.globalBatch) = " +
                          "\(c.training.microBatch) × \(comm.size) ranks × \(c.training.globalBatch / (c.training.microBatch * comm.size)) accumulation; ZeRO \(c.training.zeroStage)"))
        let tokensPerStep = Double(c.training.globalBatch * c.data.sequence)
        var step = start
        let began = DispatchTime.now().uptimeNanoseconds
        while step < c.training.steps {
            var stop = [terminationRequested.load(ordering: .relaxed) ? 1.0 : 0.0]
            engine.collective("all-reduce stop flag") { try comm.allReduce(&stop, op: .max) }
            if stop[0] > 0 {
                try saveCheckpoint(step: step)
                self.report(.interrupted(step: step))
                return step
            }
            let lr = schedule.rate(atStep: step + 1)
            let batches = try microBatches(step: step, sampler: sampler)
            let t0 = DispatchTime.now().uptimeNanoseconds
            model.adapters?.reseedDropout(seed: c.run.seed, step: step)
            model.reseedDropout(seed: c.run.seed, step: step)
            model.training = true
            let result = try runner.run(batches, learningRate: lr, step: step + 1)
            model.training = false
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            step += 1
            self.report(.step(StepMetrics(step: step, loss: result.loss, lr: Double(lr), gradNorm: result.gradientNorm,
                                          tokensPerSecond: tokensPerStep / seconds, tokens: result.tokens,
                                          elapsedSeconds: Double(DispatchTime.now().uptimeNanoseconds - began) * 1e-9)))
            let shouldEvaluate = step == c.training.steps || (c.evaluation.every > 0 && step % c.evaluation.every == 0)
            if shouldEvaluate, let metrics = try evaluate(step: step) { self.report(.evaluation(metrics)) }
            if step == c.training.steps || (c.checkpoint.every > 0 && step % c.checkpoint.every == 0) {
                try saveCheckpoint(step: step)
            }
        }
        return step
    }

    func saveCheckpoint(step: Int) throws {
        try store.save(engine: engine, step: step, keep: config.checkpoint.keep, extra: ["lineage": lineage.json])
        report(.checkpoint(step: step, path: (store.folder as NSString).appendingPathComponent(CheckpointStore.stepName(step))))
    }

    /// Validation loss over `evaluation.sequences` held-out sequences split across ranks, and for SFT the
    /// exact-match accuracy of greedy answers on held-out examples.
    public func evaluate(step: Int) throws -> EvaluationMetrics? {
        guard let validation, validation.count > 0 else { return nil }
        let c = config, comm = communicator
        let total = min(c.evaluation.sequences, validation.count)
        let mine = Array(stride(from: comm.rank, to: total, by: comm.size))
        // Every rank runs the same number of forward passes — at ZeRO-3 each one all-gathers every block —
        // so a rank with fewer sequences (total not divisible by the ranks) runs a masked padding batch.
        let size = max(1, c.training.microBatch)
        let passes = ((total + comm.size - 1) / comm.size + size - 1) / size
        var batches: [MicroBatch] = []
        for chunk in stride(from: 0, to: passes * size, by: size) {
            let indices = mine[min(chunk, mine.count)..<min(chunk + size, mine.count)]
            guard !indices.isEmpty else {
                let T = c.data.sequence
                batches.append(MicroBatch(ids: [Int32](repeating: 0, count: T), targets: [Int32](repeating: -1, count: T), batch: 1, sequence: T))
                continue
            }
            var ids: [Int32] = [], targets: [Int32] = []
            validation.batch(indices, ids: &ids, targets: &targets)
            batches.append(MicroBatch(ids: ids, targets: targets, batch: indices.count, sequence: c.data.sequence))
        }
        model.adapters?.training = false
        defer { model.adapters?.training = true }
        let loss = runner.evaluate(batches)
        var metrics = EvaluationMetrics(step: step, valLoss: loss, perplexity: exp(loss))
        if let sft, c.evaluation.exactMatch > 0, !testExamples.isEmpty {
            let count = min(c.evaluation.exactMatch, testExamples.count)
            let generator = Generator(model: model)
            var correct = [0.0]
            // Lockstep: every example costs the same number of model passes on every rank, whatever its
            // length or where it stops, and a rank short of examples makes idle passes (at ZeRO-3 every
            // pass is one collective per block; elsewhere idle passes cost nothing).
            let options = SamplingOptions(maxNewTokens: c.evaluation.maxNewTokens, stopTokens: sft.stopTokens, fixedPasses: true)
            let perRank = (count + comm.size - 1) / comm.size
            for j in 0..<perRank {
                let i = comm.rank + j * comm.size
                guard i < count else { generator.idle(passes: Generator.passes(options)); continue }
                let example = testExamples[i]
                let pair = testSet?.evaluationPair(i)
                let prompt = pair?.promptIDs ?? tokenizer.encode(example.prompt).map(Int32.init)
                guard !prompt.isEmpty, prompt.count < model.config.maxPositions else { generator.idle(passes: Generator.passes(options)); continue }
                let output = generator.generate(prompt: prompt, options: options)
                let answer = output.filter { !sft.stopTokens.contains($0) }.map(Int.init)
                if (try? tokenizer.decode(answer)) == (pair?.response ?? example.response) { correct[0] += 1 }
            }
            engine.collective("all-reduce exact match") { try comm.allReduce(&correct, op: .sum) }
            metrics.exactMatch = correct[0] / Double(count)
            metrics.exactMatchExamples = count
        }
        return metrics
    }

    /// Writes the trained model: an HF folder (full training) or a PEFT adapter folder (LoRA). Collective
    /// (stage 3 gathers the parameters); rank 0 writes into `folder`.tmp and swaps it into place, so the
    /// folder holds this run's files only. LoRA on a fresh base (`model.source: new`) also saves that base
    /// as `folder/base` and names it in the adapter's base_model_name_or_path, since nothing else holds it
    /// (for PiSSA the base saved is the residual the adapter was trained on, and the adapter is exported as is).
    public func exportFinal(to folder: String) throws {
        let temporary = folder + ".tmp"
        if communicator.rank == 0 { try? FileManager.default.removeItem(atPath: temporary) }
        try communicator.barrier()
        // The HF model is written block by block (gathered one at a time at ZeRO-3): never whole on any rank.
        if let adapters = model.adapters {
            if config.model.source == .new { try engine.exportHF(to: (temporary as NSString).appendingPathComponent("base")) }
            guard communicator.rank == 0 else { return }
            if config.model.source == .new {
                try PEFTAdapter.save(adapters, model: model.config, to: temporary,
                                     baseModel: (RunLineage.absolute(folder) as NSString).appendingPathComponent("base"))
            } else {
                let export = try pissaStart.map { try LoRAInitialisation.pissaAsLoRA(adapters, initial: $0, model: model.config) } ?? adapters
                try PEFTAdapter.save(export, model: model.config, to: temporary, baseModel: config.model.path ?? "")
            }
            // A LoRA-Null adapter keeps its manifest (variant, export kind, calibration eigenvalues) for verification.
            if let lora = config.lora, lora.initialisation == .loraNull, let source = lora.adapter,
               let manifest = try LoRANullManifest.read(folder: source) {
                try manifest.write(folder: temporary)
            }
        } else {
            try engine.exportHF(to: temporary)
            guard communicator.rank == 0 else { return }
        }
        try? FileManager.default.removeItem(atPath: folder)
        try FileManager.default.moveItem(atPath: temporary, toPath: folder)
    }
}
