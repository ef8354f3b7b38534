import Foundation
import Testing
import SubspaceDistributed
import SubspaceModel
@testable import SubspaceTraining
@testable import SubspaceStudies
import SubspaceTestSupport

/// The study on in-process ranks: three groups side by side equal each group run alone; two ranks run
/// the groups one after another; the outputs; and the verdict's arithmetic on made-up results.
@Suite struct StudyRunTests {
    static func study(output: String, modes: [QKFreezeMode] = QKFreezeMode.allCases, steps: Int = 4) -> QKFreezeStudyConfig {
        var c = QKFreezeStudyConfig(train: StudyTestSupport.trainConfig(output: output, steps: steps))
        c.study.modes = modes
        c.study.exportFinal = false
        return c
    }

    static func run(_ config: QKFreezeStudyConfig, ranks: Int) throws -> StudyResults {
        let results = try LocalCluster.run(size: ranks, timeout: 600) { comm -> StudyResults? in
            try QKFreezeStudy(config: config, world: comm).run()
        }
        #expect(results.dropFirst().allSatisfy { $0 == nil }, "only world rank 0 has the results")
        return try #require(results[0])
    }

    static func expectSameLosses(_ a: GroupRun, _ b: GroupRun, rtol: Double, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.trainLoss.map(\.step) == b.trainLoss.map(\.step), sourceLocation: sourceLocation)
        for (x, y) in zip(a.trainLoss, b.trainLoss) {
            #expect(abs(x.value - y.value) <= rtol * abs(y.value), "\(a.mode) step \(x.step): \(x.value) vs \(y.value)", sourceLocation: sourceLocation)
        }
        for (x, y) in zip(a.validationPerplexity, b.validationPerplexity) {
            #expect(abs(x.value - y.value) <= rtol * abs(y.value), "\(a.mode) eval at \(x.step): \(x.value) vs \(y.value)", sourceLocation: sourceLocation)
        }
    }

    @Test func concurrentGroupsEqualEachGroupAlone() throws {
        let folder = try TestFiles.temporaryFolder("study")
        defer { TestFiles.cleanUp(folder) }
        let together = try Self.run(Self.study(output: folder + "/together"), ranks: 3)
        #expect(together.plan.schedule == .concurrent && together.plan.ranksPerGroup == 1)
        #expect(together.groups.map(\.mode) == QKFreezeMode.allCases)
        #expect(together.groups.map(\.ranks) == [[0], [1], [2]])
        for mode in QKFreezeMode.allCases {
            let alone = try Self.run(Self.study(output: folder + "/alone-\(mode.rawValue)", modes: [mode]), ranks: 1)
            let g = try #require(together.groups.first { $0.mode == mode })
            Self.expectSameLosses(g, alone.groups[0], rtol: 1e-5)
            #expect(g.trainLoss.count == 4 && g.validationPerplexity.map(\.step) == [2, 4])
            #expect(g.freeze.passed, "\(g.freeze)")
            #expect(FileManager.default.fileExists(atPath: folder + "/together/\(mode.rawValue)/seed-3/metrics.jsonl"))
            #expect(FileManager.default.fileExists(atPath: folder + "/together/\(mode.rawValue)/seed-3/config.resolved.yaml"))
        }
        // Same init and data for standard and ortho except W_q, W_k: their first losses differ, ortho and
        // ortho-frozen start identically.
        let loss = { (m: QKFreezeMode) in together.groups.first { $0.mode == m }!.trainLoss[0].value }
        #expect(loss(.ortho) == loss(.orthoFrozen))
        #expect(loss(.standard) != loss(.ortho))

        let frozen = together.summary(.orthoFrozen)!, ortho = together.summary(.ortho)!
        #expect(frozen.parameters.frozen == frozen.parameters.qkWeights && ortho.parameters.frozen == 0)
        #expect(together.verdict.map(\.id) == ["H1", "H2", "H3", "H4"])
        #expect(together.verdict[0].pass == true, "\(together.verdict[0])")
        #expect(together.verdict.allSatisfy { $0.pass != nil })

        for name in ["results.json", "report.md", "report.html", "study.resolved.yaml"] {
            #expect(FileManager.default.fileExists(atPath: folder + "/together/" + name), "\(name)")
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/together/results.json"))
        #expect(try StudyResults.decoder.decode(StudyResults.self, from: data) == together)
        let html = try String(contentsOfFile: folder + "/together/report.html", encoding: .utf8)
        #expect(html.components(separatedBy: "<svg").count - 1 == 3)
        #expect(!html.contains("<script") && !html.contains("src=\"http"))
        let markdown = try String(contentsOfFile: folder + "/together/report.md", encoding: .utf8)
        #expect(markdown.contains("| H1 |") && markdown.contains("## Runs"))
    }

    @Test func twoRanksRunTheGroupsOneAfterAnother() throws {
        let folder = try TestFiles.temporaryFolder("study2")
        defer { TestFiles.cleanUp(folder) }
        var config = Self.study(output: folder, modes: [.ortho, .orthoFrozen], steps: 2)
        config.study.seeds = [3, 4]
        let results = try Self.run(config, ranks: 2)
        #expect(results.plan.schedule == .concurrent && results.plan.ranksPerGroup == 1, "two modes on two ranks run side by side")
        #expect(results.groups.count == 4 && results.summaries.map(\.seeds) == [[3, 4], [3, 4]])
        #expect(results.summary(.ortho)?.finalPerplexity?.values.count == 2)

        config.study.modes = QKFreezeMode.allCases
        config.study.seeds = nil
        config.train.run.output = folder + "/three"
        let sequential = try Self.run(config, ranks: 2)
        #expect(sequential.plan.schedule == .sequential && sequential.plan.ranksPerGroup == 2)
        #expect(sequential.groups.map(\.ranks) == [[0, 1], [0, 1], [0, 1]])
        #expect(sequential.groups.allSatisfy { $0.freeze.passed && $0.memory.count == 2 })
    }

    /// Four ranks, three groups: one rank per group, the fourth sits the wave out.
    @Test func aSpareRankSitsOut() throws {
        let folder = try TestFiles.temporaryFolder("study4")
        defer { TestFiles.cleanUp(folder) }
        let results = try Self.run(Self.study(output: folder, steps: 2), ranks: 4)
        #expect(results.plan.ranksPerGroup == 1 && results.groups.map(\.ranks) == [[0], [1], [2]])
    }

    /// With checkpoint.resume auto a rerun continues each group from its checkpoint; the curves and the
    /// freeze check cover the whole run, and equal a run that was never interrupted.
    @Test func resumedGroupsContinue() throws {
        let folder = try TestFiles.temporaryFolder("study-resume")
        defer { TestFiles.cleanUp(folder) }
        func config(_ output: String, steps: Int) -> QKFreezeStudyConfig {
            var c = Self.study(output: folder + "/" + output, modes: [.orthoFrozen], steps: steps)
            c.train.training.schedule = .constant
            c.train.checkpoint.every = 2
            c.train.checkpoint.resume = .auto
            return c
        }
        let whole = try Self.run(config("whole", steps: 4), ranks: 1)
        _ = try Self.run(config("parts", steps: 2), ranks: 1)
        let resumed = try Self.run(config("parts", steps: 4), ranks: 1)
        let (a, b) = (whole.groups[0], resumed.groups[0])
        #expect(b.trainLoss.map(\.step) == [1, 2, 3, 4] && b.validationPerplexity.map(\.step) == [2, 4])
        #expect(a.trainLoss.map(\.value) == b.trainLoss.map(\.value))
        #expect(a.validationPerplexity.map(\.value) == b.validationPerplexity.map(\.value))
        #expect(b.trainLoss.map(\.seconds) == b.trainLoss.map(\.seconds).sorted(), "the clock continues across the resume")
        #expect(b.freeze.passed, "\(b.freeze)")
        var path = config("parts", steps: 4)
        path.train.checkpoint.resume = .path(folder)
        let bad = path
        #expect(throws: ConfigError.self) {
            try LocalCluster.run(size: 1) { comm in _ = try QKFreezeStudy(config: bad, world: comm) }
        }
    }

    // MARK: Verdict arithmetic

    static func group(_ mode: QKFreezeMode, seed: UInt64, ppl: Double, tps: Double, frozenOK: Bool = true) -> GroupRun {
        let qk = 400, total = 10_000
        let curve = [CurvePoint(step: 10, value: ppl * 2, seconds: 1), CurvePoint(step: 20, value: ppl, seconds: 2)]
        return GroupRun(mode: mode, seed: seed, ranks: [0], output: "x",
                        parameters: .init(total: total, trainable: mode == .orthoFrozen ? total - qk : total,
                                          frozen: mode == .orthoFrozen ? qk : 0, qkWeights: qk),
                        steps: 20, tokensPerStep: 100, wallSeconds: 2, tokensPerSecond: tps,
                        trainLoss: [CurvePoint(step: 20, value: log(ppl), seconds: 2)], validationPerplexity: curve,
                        memory: [.init(rank: 0, peakBytes: 1 << 20, startBytes: 0, peakReset: true)],
                        freeze: .init(frozenTensors: mode == .orthoFrozen ? 4 : 0, changed: frozenOK ? [] : ["layers.0.attn.q.weight"], unchangedTrainable: []))
    }

    static var description: StudyDescription {
        var c = QKFreezeStudyConfig(train: TrainConfig())
        c.study.seeds = [1, 2]
        return StudyDescription(c)
    }

    @Test func verdictFromMeans() {
        let plan = StudyPlan(worldSize: 3, modes: QKFreezeMode.allCases, seeds: [1, 2])
        let groups = [
            Self.group(.standard, seed: 1, ppl: 10, tps: 100), Self.group(.standard, seed: 2, ppl: 12, tps: 100),
            Self.group(.ortho, seed: 1, ppl: 10, tps: 100), Self.group(.ortho, seed: 2, ppl: 10, tps: 110),
            Self.group(.orthoFrozen, seed: 1, ppl: 10.3, tps: 120), Self.group(.orthoFrozen, seed: 2, ppl: 10.3, tps: 120),
        ]
        let r = StudyResults(study: Self.description, plan: plan, groups: groups)
        let standard = r.summary(.standard)!
        #expect(standard.finalPerplexity?.mean == 11)
        #expect(abs(standard.finalPerplexity!.std - 2.0.squareRoot()) < 1e-12)
        #expect(r.targetPerplexity == 12 && r.targetSource == "auto")
        #expect(r.summary(.ortho)?.stepsToTarget?.mean == 20 && r.summary(.ortho)?.reachedTarget == 2)
        let v = Dictionary(uniqueKeysWithValues: r.verdict.map { ($0.id, $0) })
        #expect(v["H1"]?.pass == true && abs(v["H1"]!.value! - 0.04) < 1e-12)
        #expect(v["H2"]?.pass == true && abs(v["H2"]!.value! - 0.03) < 1e-12)
        #expect(v["H3"]?.pass == true && abs(v["H3"]!.value! - 120 / 105) < 1e-12)
        // Standard's seeds (10 and 12) spread wider than the margin to the ×1.10 bar: not decided.
        #expect(v["H4"]?.verdict == "inconclusive" && abs(v["H4"]!.value! - 10.3 / 11) < 1e-12)
        let tight = groups.map { g -> GroupRun in var g = g; if g.mode == .standard { g.validationPerplexity[1].value = 11 }; return g }
        #expect(StudyResults(study: Self.description, plan: plan, groups: tight).verdict.first { $0.id == "H4" }?.pass == true)

        // Worse numbers fail each hypothesis; a freeze that did not hold fails H1.
        let bad = [
            Self.group(.standard, seed: 1, ppl: 8, tps: 100), Self.group(.ortho, seed: 1, ppl: 8, tps: 100),
            Self.group(.orthoFrozen, seed: 1, ppl: 9, tps: 90, frozenOK: false),
        ]
        let worse = StudyResults(study: Self.description, plan: plan, groups: bad)
        #expect(worse.verdict.map(\.pass) == [false, false, false, false])
        #expect(worse.summary(.orthoFrozen)?.freezeVerified == false)

        // Two identical groups measured with their step-to-step noise: H3 is inconclusive, never PASS or FAIL.
        var same = [Self.group(.ortho, seed: 1, ppl: 10, tps: 100), Self.group(.orthoFrozen, seed: 1, ppl: 10, tps: 101)]
        for i in same.indices { same[i].tokensPerSecondQuartiles = [92, 108] }
        let h3 = StudyResults(study: Self.description, plan: plan, groups: same).verdict.first { $0.id == "H3" }
        #expect(h3?.verdict == "inconclusive" && h3?.pass == nil)

        // A missing group leaves its hypotheses undecided.
        let partial = StudyResults(study: Self.description, plan: plan, groups: [Self.group(.orthoFrozen, seed: 1, ppl: 9, tps: 90)])
        #expect(partial.verdict.map(\.pass) == [nil, nil, nil, nil])
        #expect(StudyReport.html(partial).contains("no data") == false)
    }
}
