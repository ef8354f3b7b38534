import SubspaceTraining
import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel

/// What a study reports as it goes; the executable prints it.
public enum StudyEvent: Sendable {
    /// World rank 0, before anything runs.
    case plan(StudyPlan)
    /// A group's rank 0, as its run starts: the world ranks it runs on and its run folder.
    case started(StudyPlan.Run, ranks: Range<Int>, output: String)
    /// A group's rank 0: its trainer's events.
    case training(StudyPlan.Run, TrainingEvent)
    /// A group's rank 0, when its run is done.
    case finished(GroupRun)
    /// World rank 0: the files written at the end.
    case wrote([String])
}

/// The Q/K freeze study (`../shared/seeds/qk-freeze.md`, issue 6): the world communicator is split into
/// one group per mode (`standard`, `ortho`, `ortho-frozen`), each training data-parallel inside its own
/// sub-communicator on the same data order, seed and schedule (`StudyPlan` says who runs what when).
/// Each group writes its run folder `<run.output>/<mode>/seed-<s>/` (config.resolved.yaml,
/// metrics.jsonl, checkpoints/, final/). What every group measured is gathered on world rank 0, which
/// writes results.json, report.md and report.html into `run.output`.
///
/// `checkpoint.resume: never` starts every group in a fresh folder; `auto` lets each group resume from
/// the newest checkpoint in its own folder (a preempted cluster job rerun with the same command), its
/// curves continuing the metrics.jsonl kept from before.
///
/// Collective over `world`: every rank calls `run()`.
public final class QKFreezeStudy {
    public let config: QKFreezeStudyConfig
    public let world: any Communicator
    public let plan: StudyPlan
    /// The command line, recorded in results.json and the reports.
    public var command: String?
    /// Wraps a group's communicator before its trainer uses it (the executable adds the watchdog);
    /// given the run folder.
    public var wrapCommunicator: (any Communicator, String) throws -> any Communicator = { c, _ in c }
    let report: (StudyEvent) -> Void

    public init(config: QKFreezeStudyConfig, world: any Communicator, command: String? = nil,
                report: @escaping (StudyEvent) -> Void = { _ in }) throws {
        self.config = config
        self.world = world
        self.command = command
        self.report = report
        plan = StudyPlan(worldSize: world.size, modes: config.study.modes, seeds: config.seeds)
        try config.train.validate(worldSize: plan.ranksPerGroup)
        if case .path = config.train.checkpoint.resume {
            throw ConfigError(.value, key: "checkpoint.resume",
                              "a study resumes each group from the newest checkpoint in its own folder: use auto or never, not a path")
        }
        let m = config.train.model
        if config.study.qkInit == .shared, m.source == .new, let kv = m.kvHeads, kv != m.heads, config.study.modes.contains(where: \.isOrthogonal) {
            throw ConfigError(.value, key: "study.qk_init",
                              "shared (W_k = W_q) needs equal shapes, but model.kv_heads \(kv) ≠ model.heads \(m.heads) makes W_k smaller; use independent")
        }
    }

    public var output: String { config.train.run.output }

    /// The run folder of one group.
    public func folder(_ run: StudyPlan.Run) -> String {
        ((output as NSString).appendingPathComponent(run.mode.rawValue) as NSString).appendingPathComponent("seed-\(run.seed)")
    }

    /// Runs every wave; returns the results on world rank 0 (nil elsewhere).
    @discardableResult
    public func run() throws -> StudyResults? {
        if world.rank == 0 {
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            let resolved = config.train.resolvedYAML() + config.study.resolvedYAML(defaultSeed: config.train.run.seed)
            try resolved.write(toFile: (output as NSString).appendingPathComponent("study.resolved.yaml"), atomically: true, encoding: .utf8)
            report(.plan(plan))
        }
        try world.barrier()
        var groups: [GroupRun] = []
        for (w, wave) in plan.waves.enumerated() {
            let slot = plan.slot(of: world.rank, wave: w)
            let group = try world.split(color: slot ?? wave.count, key: world.rank)
            var encoded: [UInt8] = []
            if let slot {
                let result = try runGroup(wave[slot], communicator: group, worldRanks: plan.ranks(ofSlot: slot))
                if let result { encoded = Array(try StudyResults.encoder.encode(result)) }
            }
            // Every group's rank 0 sends its record to world rank 0; other ranks send nothing.
            let all = try world.allGatherArrays(encoded)
            try group.free()  // the split communicator (and its watchdog heartbeats, shared-memory window)
            if world.rank == 0 {
                for bytes in all where !bytes.isEmpty {
                    groups.append(try StudyResults.decoder.decode(GroupRun.self, from: Data(bytes)))
                }
            }
        }
        guard world.rank == 0 else { return nil }
        let results = StudyResults(study: StudyDescription(config), plan: plan, groups: groups, command: command)
        let written = try StudyReport.write(results, to: output)
        try StudyFinding(study: "qk-freeze", title: "Q/K freeze: standard vs orthogonal vs orthogonal-and-frozen W_q, W_k",
                         report: "report.html", finding: results.finding, command: command).write(to: output)
        report(.wrote(written))
        return results
    }

    /// Collects a group's measurements on its rank 0 as its trainer reports them.
    final class Recorder {
        let tokensPerStep: Int
        var metrics: MetricsLog?
        var trainLoss: [CurvePoint] = []
        var perplexity: [CurvePoint] = []
        var elapsed = 0.0
        var rates: [Double] = []
        var firstRate = 0.0
        /// Seconds the run had trained before it was resumed (its clock restarts at the resume).
        var resumedSeconds = 0.0

        init(tokensPerStep: Int) { self.tokensPerStep = tokensPerStep }

        /// Takes in the lines a resumed run's metrics.jsonl kept from before the resume.
        func replay(metricsFile: String) {
            guard let text = try? String(contentsOfFile: metricsFile, encoding: .utf8) else { return }
            let decoder = JSONDecoder()
            for line in text.split(separator: "\n") {
                let data = Data(line.utf8)
                if line.contains("\"perplexity\""), let e = try? decoder.decode(EvaluationMetrics.self, from: data) {
                    record(.evaluation(e))
                } else if let m = try? decoder.decode(StepMetrics.self, from: data) {
                    record(.step(m))
                }
            }
            resumedSeconds = elapsed
        }

        func record(_ event: TrainingEvent) {
            switch event {
            case .step(var m):
                metrics?.append(m)
                m.elapsedSeconds += resumedSeconds
                trainLoss.append(CurvePoint(step: m.step, value: m.loss, seconds: m.elapsedSeconds))
                elapsed = m.elapsedSeconds
                if m.step == 1 { firstRate = m.tokensPerSecond } else { rates.append(m.tokensPerSecond) }
            case .evaluation(let e):
                metrics?.append(e)
                perplexity.append(CurvePoint(step: e.step, value: e.perplexity, seconds: elapsed))
            default:
                break
            }
        }

        /// The median of steps 2…n's rates: robust to the first step's allocations, to hiccups, and to the
        /// tail of a concurrent wave where a group that is still running has the machine to itself.
        var tokensPerSecond: Double {
            guard !rates.isEmpty else { return firstRate }
            let sorted = rates.sorted()
            let mid = sorted.count / 2
            return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
        }

        /// The first and third quartiles of steps 2…n's rates: the run's own step-to-step noise.
        var tokensPerSecondQuartiles: [Double]? {
            guard rates.count >= 4 else { return nil }
            let sorted = rates.sorted()
            func at(_ q: Double) -> Double {
                let x = q * Double(sorted.count - 1)
                let i = Int(x), f = x - Double(i)
                return i + 1 < sorted.count ? sorted[i] * (1 - f) + sorted[i + 1] * f : sorted[i]
            }
            return [at(0.25), at(0.75)]
        }
    }

    /// One group's run on its sub-communicator; the record on the group's rank 0, nil on the others.
    func runGroup(_ run: StudyPlan.Run, communicator group: any Communicator, worldRanks: Range<Int>) throws -> GroupRun? {
        var c = config.train
        c.run.seed = run.seed
        c.run.output = folder(run)
        let leader = group.rank == 0
        if leader {
            // never: a fresh run folder; auto: keep it, so the trainer resumes from its newest checkpoint.
            if c.checkpoint.resume == .never { try? FileManager.default.removeItem(atPath: c.run.output) }
            try FileManager.default.createDirectory(atPath: c.run.output, withIntermediateDirectories: true)
            let header = "# Q/K freeze study group: mode \(run.mode.rawValue), seed \(run.seed), world ranks \(worldRanks.lowerBound)..<\(worldRanks.upperBound)\n"
            try (header + c.resolvedYAML()).write(toFile: (c.run.output as NSString).appendingPathComponent("config.resolved.yaml"),
                                                  atomically: true, encoding: .utf8)
            report(.started(run, ranks: worldRanks, output: c.run.output))
        }
        try group.barrier()
        let communicator = try wrapCommunicator(group, c.run.output)
        let peakReset = PeakMemory.resetPeak()
        let startMemory = PeakMemory.read()?.current ?? 0

        let recorder = Recorder(tokensPerStep: c.training.globalBatch * c.data.sequence)
        let options = config.study.options
        let trainer = try Trainer(config: c, communicator: communicator, prepareModel: { model in
            try run.mode.prepare(model, seed: run.seed, options: options)
        }, report: { [report] event in
            guard leader else { return }
            recorder.record(event)
            report(.training(run, event))
        })
        let model = trainer.model
        if leader {
            let start = try trainer.resumePointStep()
            let metrics = try MetricsLog(folder: c.run.output, resumeStep: start)
            if start > 0 { recorder.replay(metricsFile: metrics.path) }
            recorder.metrics = metrics
        }
        let intended = try FreezeCheck.intendedFrozen(config: c, mode: run.mode, layout: model.layout)
        let counts = ParameterReport(model: model)
        // The initialisation is a function of the seed, so this is the state before step 1 even when the
        // trainer resumes from a checkpoint: the check below covers the whole run.
        let before = try trainer.engine.fullParameters()
        let began = DispatchTime.now().uptimeNanoseconds
        try trainer.run()
        let wall = Double(DispatchTime.now().uptimeNanoseconds - began) * 1e-9 + recorder.resumedSeconds
        let after = try trainer.engine.fullParameters()
        if config.study.exportFinal {
            try trainer.exportFinal(to: (c.run.output as NSString).appendingPathComponent("final"))
        }

        // The seed's lesson: check that what is meant to be frozen stayed bit-identical, and nothing else did.
        var changed: [String] = [], unchangedTrainable: [String] = []
        before.withUnsafeBufferPointer { b in
            after.withUnsafeBufferPointer { a in
                for e in model.layout.entries {
                    let same = e.range.allSatisfy { b[$0].bitPattern == a[$0].bitPattern }
                    if intended.contains(e.role) { if !same { changed.append(e.name) } } else if same { unchangedTrainable.append(e.name) }
                }
            }
        }

        let memory = PeakMemory.read()
        let mine: [Int64] = [Int64(memory?.peak ?? 0), Int64(startMemory), peakReset ? 1 : 0]
        let everyone = try group.allGather(mine, counts: Array(repeating: 3, count: group.size))
        guard leader else { return nil }
        let ranks = Array(worldRanks)
        let qk = OrthogonalInit.roles(layerCount: model.config.layerCount).reduce(0) { $0 + model.layout[$1].count }
        let result = GroupRun(
            mode: run.mode, seed: run.seed, ranks: ranks, output: c.run.output,
            parameters: .init(total: counts.total, trainable: counts.trainable, frozen: counts.frozen, qkWeights: qk),
            steps: c.training.steps, tokensPerStep: recorder.tokensPerStep, wallSeconds: wall,
            tokensPerSecond: recorder.tokensPerSecond, tokensPerSecondQuartiles: recorder.tokensPerSecondQuartiles, trainLoss: recorder.trainLoss, validationPerplexity: recorder.perplexity,
            memory: ranks.indices.map { i in
                GroupRun.RankMemory(rank: ranks[i], peakBytes: Int(everyone[3 * i]), startBytes: Int(everyone[3 * i + 1]),
                                    peakReset: everyone[3 * i + 2] != 0)
            },
            freeze: .init(frozenTensors: intended.count, changed: changed, unchangedTrainable: unchangedTrainable))
        report(.finished(result))
        return result
    }
}
