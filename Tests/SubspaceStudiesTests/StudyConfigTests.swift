import Foundation
import Testing
import SubspaceModel
@testable import SubspaceTraining
@testable import SubspaceStudies
import SubspaceTestSupport

/// Study configs: the `study:` section split off a training config (line numbers kept), strict keys,
/// overrides for both parts, the shipped study configs; and the plan of who runs what when.
@Suite struct StudyConfigTests {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func error(_ yaml: String, overrides: [String] = [], sourceLocation: SourceLocation = #_sourceLocation) -> ConfigError? {
        do {
            _ = try QKFreezeStudyConfig.load(yaml: yaml, source: "study.yaml", overrides: overrides)
            Issue.record("loaded without an error", sourceLocation: sourceLocation)
        } catch let e as ConfigError {
            return e
        } catch {
            Issue.record("not a ConfigError: \(error)", sourceLocation: sourceLocation)
        }
        return nil
    }

    @Test func splitsTheStudySection() throws {
        let c = try QKFreezeStudyConfig.load(yaml: """
            run: {output: runs/q, seed: 9}
            study:
              modes: [ortho-frozen, standard]
              seeds: [1, 2, 3]
              qk_init: shared
              gain: 0.5
              target_perplexity: 6.5
              h2_tolerance: 0.02
              h4_tolerance: 0.2
              export_final: false
            training:
              steps: 7
            """)
        #expect(c.train.run.output == "runs/q" && c.train.training.steps == 7)
        #expect(c.study.modes == [.orthoFrozen, .standard])
        #expect(c.seeds == [1, 2, 3])
        #expect(c.study.qkInit == .shared && c.study.gain == 0.5)
        #expect(c.study.targetPerplexity == 6.5 && c.study.h2Tolerance == 0.02 && c.study.h4Tolerance == 0.2)
        #expect(c.study.exportFinal == false)
    }

    @Test func withoutAStudySectionTheDefaults() throws {
        let c = try QKFreezeStudyConfig.load(yaml: "run: {seed: 5}\n")
        #expect(c.study == StudySettings())
        #expect(c.study.modes == [.standard, .ortho, .orthoFrozen])
        #expect(c.seeds == [5])
        #expect(try QKFreezeStudyConfig.load(yaml: "study:\n").study == StudySettings())
    }

    /// Errors in the training sections after the study section still name their own line.
    @Test func lineNumbersSurviveTheSplit() throws {
        let e = error("""
            study:
              seeds: [1]
              # a comment
            training:
              stpes: 3
            """)
        #expect(e?.key == "training.stpes")
        #expect(e?.line == 5)
        #expect(e?.source == "study.yaml")
    }

    @Test func studyKeysAreStrict() throws {
        let e = error("study:\n  sedes: [1]\n")
        #expect(e?.kind == .unknownKey && e?.key == "study.sedes" && e?.line == 2)
        #expect(e?.message.contains("did you mean study.seeds?") == true)
        #expect(error("study:\n  modes: [ortho, frozen]\n")?.message.contains("'frozen' is not a mode") == true)
        #expect(error("study:\n  modes: [ortho, ortho]\n")?.message.contains("twice") == true)
        #expect(error("study:\n  modes: []\n")?.key == "study.modes")
        #expect(error("study:\n  seeds: [1, 1]\n")?.key == "study.seeds")
        #expect(error("study:\n  gain: -1\n")?.key == "study.gain")
        #expect(error("study:\n  qk_init: tied\n")?.key == "study.qk_init")
        #expect(error("study:\n  target_perplexity: 0.5\n")?.key == "study.target_perplexity")
        #expect(error("study: [1]\n")?.key == "study")
        #expect(error("study: {}\nstudy: {}\n")?.message.contains("twice") == true)
        #expect(error("", overrides: ["study.sedes=[1]"])?.source == "--set study.sedes=[1]")
    }

    @Test func overridesGoToTheirPart() throws {
        let c = try QKFreezeStudyConfig.load(yaml: "study: {seeds: [1]}\n",
                                             overrides: ["study.seeds=[4, 5]", "training.steps=3", "study.modes=[ortho]"])
        #expect(c.seeds == [4, 5] && c.study.modes == [.ortho] && c.train.training.steps == 3)
        let whole = try QKFreezeStudyConfig.load(yaml: "study: {seeds: [1], gain: 2}\n", overrides: ["study={modes: [standard]}"])
        #expect(whole.study.gain == 1 && whole.study.seeds == nil && whole.study.modes == [.standard])
        #expect(try QKFreezeStudyConfig.load(yaml: "study: {seeds: [1]}\n", overrides: ["study.seeds=null"]).study.seeds == nil)
    }

    @Test func resolvedYAMLReadsBack() throws {
        var c = QKFreezeStudyConfig(train: TrainConfig())
        c.study.modes = [.ortho, .orthoFrozen]
        c.study.seeds = [2, 7]
        c.study.gain = 1.5
        c.study.targetPerplexity = 4.25
        c.study.exportFinal = false
        let back = try QKFreezeStudyConfig.load(yaml: c.train.resolvedYAML() + c.study.resolvedYAML(defaultSeed: 1))
        #expect(back == c)
    }

    @Test(arguments: ["qk-freeze.yaml", "qk-freeze-cluster.yaml"])
    func shippedStudyConfigsLoad(_ name: String) throws {
        let path = Self.repository.appendingPathComponent("configs/\(name)").path
        let c = try QKFreezeStudyConfig.load(path: path)
        #expect(c.study.modes == [.standard, .ortho, .orthoFrozen])
        #expect(c.train.model.family == .gpt2)
        try c.train.validate(worldSize: 1)
        if name == "qk-freeze-cluster.yaml" {
            // The seed's configuration.
            let (m, t) = (c.train.model, c.train.training)
            #expect(m.layers == 6 && m.width == 512 && m.heads == 8 && m.intermediate == 2048 && m.context == 512)
            #expect(c.train.data.sequence == 512 && t.globalBatch == 8 && t.learningRate == 3e-4 && t.warmup == 2000 && t.schedule == .cosine)
        }
    }

    // MARK: Plan

    @Test func planSharesRanksOrRunsOneAtATime() {
        let modes = QKFreezeMode.allCases
        let three = StudyPlan(worldSize: 3, modes: modes, seeds: [1])
        #expect(three.schedule == .concurrent && three.ranksPerGroup == 1 && three.waves.count == 1)
        #expect((0..<3).map { three.slot(of: $0, wave: 0) } == [0, 1, 2])

        let two = StudyPlan(worldSize: 2, modes: modes, seeds: [1])
        #expect(two.schedule == .sequential && two.ranksPerGroup == 2 && two.waves.map(\.count) == [1, 1, 1])
        #expect(two.waves.map { $0[0].mode } == modes)

        let one = StudyPlan(worldSize: 1, modes: modes, seeds: [1, 2])
        #expect(one.waves.count == 6 && one.ranksPerGroup == 1)

        let four = StudyPlan(worldSize: 4, modes: modes, seeds: [1])
        #expect(four.ranksPerGroup == 1 && four.slot(of: 3, wave: 0) == nil, "the fourth rank sits out")

        let six = StudyPlan(worldSize: 6, modes: modes, seeds: [1, 2, 3])
        #expect(six.ranksPerGroup == 1 && six.waves.map(\.count) == [6, 3])
        #expect(six.waves[0].map(\.seed) == [1, 1, 1, 2, 2, 2])

        let sixOne = StudyPlan(worldSize: 6, modes: modes, seeds: [1])
        #expect(sixOne.ranksPerGroup == 2 && sixOne.ranks(ofSlot: 2) == 4..<6)

        let only = StudyPlan(worldSize: 3, modes: [.ortho], seeds: [1])
        #expect(only.schedule == .sequential && only.ranksPerGroup == 3)
    }
}
