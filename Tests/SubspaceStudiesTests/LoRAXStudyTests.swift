import Foundation
import Testing
import SubspaceAnalysis
import SubspaceDistributed
import SubspaceModel
@testable import SubspaceTraining
@testable import SubspaceStudies
import SubspaceTestSupport

@Suite struct LoRAXStudyTests {
    @Test func shippedConfigReadsAndOverridesApply() throws {
        let c = try LoRAXStudyConfig.load(path: TestFiles.repository + "/configs/lora-x.yaml",
                                          overrides: ["study.seeds=[4, 5, 6]", "study.threshold=0.3", "study.subspace_rank=null"])
        #expect(c.seeds == [4, 5, 6] && c.threshold == 0.3 && c.subspaceRank == nil)
        #expect(c.seeds.count >= 3 && c.baseSeed != c.controlSeed)
        #expect(c.grownWidth == 128 && c.grownSteps >= 1)
        // The resolved YAML reads back to the same settings.
        let folder = try TestFiles.temporaryFolder("lorax-config")
        defer { TestFiles.cleanUp(folder) }
        try TestFiles.write(c.resolvedYAML, to: folder + "/resolved.yaml")
        #expect(try LoRAXStudyConfig.load(path: folder + "/resolved.yaml") == c)
    }

    @Test func badKeysAndValuesNameTheKey() throws {
        let folder = try TestFiles.temporaryFolder("lorax-config")
        defer { TestFiles.cleanUp(folder) }
        func message(_ yaml: String, _ overrides: [String] = []) -> String {
            try! TestFiles.write(yaml, to: folder + "/c.yaml")
            do { _ = try LoRAXStudyConfig.load(path: folder + "/c.yaml", overrides: overrides); return "" } catch { return "\(error)" }
        }
        #expect(message("study:\n  sedes: [1]\n").contains("study.sedes: unknown key"))
        #expect(message("study:\n  lora_steps: ten\n").contains("study.lora_steps: must be an integer"))
        #expect(message("study:\n  control_seed: 1\n").contains("study.control_seed"))
        #expect(message("study:\n  seeds: []\n").contains("study.seeds"))
        #expect(message("study:\n  grown_steps: 0\n").contains("study.grown_steps"))
        #expect(message("study:\n  grown_width: wide\n").contains("study.grown_width: must be an integer"))
        #expect(message("training:\n  steps: 1\n").contains("one top-level section 'study:'"))
        #expect(message("study: {}\n", ["study.threshold=2"]).contains("threshold must be in [0, 1]"))
        #expect(message("study: {}\n", ["study.subspace_ranks=[16, 16]"]).contains("study.subspace_ranks: must not repeat a k"))
    }

    /// The whole study at toy size on two in-process ranks: every arm scored for every seed, the related
    /// pair far above chance and transferred, the control refused under the threshold, the report written.
    @Test func tinyStudyRunsEndToEnd() throws {
        let output = try TestFiles.temporaryFolder("lorax-study")
        defer { TestFiles.cleanUp(output) }
        let sft = output + "/sft"
        _ = try SFTGenerator(seed: 1).write(to: sft, train: 64, test: 8)
        var c = LoRAXStudyConfig()
        c.output = output + "/study"
        c.baseConfig = TestFiles.repository + "/configs/base.yaml"
        c.loraConfig = TestFiles.repository + "/configs/student-lora.yaml"
        c.corpus = StudyTestSupport.corpus
        c.sft = sft
        c.common = ["model.layers=1", "model.width=32", "model.heads=2", "model.context=32", "data.sequence=32",
                    "training.global_batch=4", "training.micro_batch=2", "training.warmup=1", "checkpoint.every=0",
                    "evaluation.every=0", "evaluation.max_new_tokens=4"]
        c.baseSteps = 6
        c.continueSteps = 2
        c.loraSteps = 3
        c.seeds = [1, 2]
        c.grownWidth = 64
        c.grownSteps = 2
        c.evaluationSequences = 4
        c.exactMatchExamples = 4
        c.extraSubspaceRanks = [32]
        let config = c
        let results = try LocalCluster.run(size: 2, timeout: 900) { comm in
            try LoRAXStudy.run(config: config, context: StudyContext(world: comm))
        }
        let r = try #require(results[0])
        #expect(results[1] == nil)
        let arms = Set(r.summaries.map { "\($0.base)/\($0.arm)" })
        for arm in ["b0/source", "b1/none", "b1/copied", "b1/direct", "b1/transferred", "control/none", "control/copied",
                    "control/transferred (threshold 0)"] {
            #expect(arms.contains(arm), "\(arm) missing from \(arms.sorted())")
        }
        #expect(r.arms.count == r.summaries.count * 2)
        // The different-width arm: the grown base scored without an adapter, with one trained on it, and
        // with the transferred one (under the threshold or forced).
        #expect(arms.contains("grown/none") && arms.contains("grown/direct") && arms.contains("grown/copied (grown)"), "\(arms.sorted())")
        let grownCopy = try PEFTAdapter.load(folder: c.output + "/grown-copy-s1",
                                             for: try ModelConfig(hfConfigAt: c.output + "/grown/final/config.json"))
        #expect(grownCopy.config.rank == 8 && grownCopy.adapters.allSatisfy { $0.module.inFeatures == 64 || $0.module.inFeatures == 256 })
        #expect(arms.contains("grown/transferred") || arms.contains("grown/transferred (threshold 0)"), "\(arms.sorted())")
        let wide = try #require(r.similarities.first { $0.pair.hasPrefix("b0 → grown") })
        #expect(wide.meanRatioU > 1, "\(wide)")
        let grownAdapter = try PEFTAdapter.readConfig(folder: c.output + "/transfer-grown\(wide.refusal == nil ? "" : "-forced")-s1")
        #expect(grownAdapter.rank == 8)
        let related = try #require(r.similarities.first { $0.pair.hasPrefix("b0 → b1") })
        let control = try #require(r.similarities.first { $0.pair == "b0 → control" })
        #expect(related.meanRatioU > 2 && related.defaultThresholdTransferred > 0, "\(related)")
        #expect(control.meanRatioU < 2 && control.refusal != nil, "\(control)")
        let files = try LoRAXStudyReport.write(r, to: c.output)
        for f in files { #expect(FileManager.default.fileExists(atPath: f), "\(f)") }
        let finding = StudyFinding.read(folder: c.output)?.finding ?? ""
        #expect(finding.contains("grown"), "\(finding)")
        // The extra-k arm (k = the full width here) is scored, judged against the copy, and in the finding.
        #expect(arms.contains("b1/transferred-k32"), "\(arms.sorted())")
        #expect(r.verdicts.contains { $0.claim.hasPrefix("k = 32") }, "\(r.verdicts.map(\.claim))")
        #expect(finding.contains("related B1 at k = 32: "), "\(finding)")
        let html = try String(contentsOfFile: c.output + "/report.html", encoding: .utf8)
        #expect(html.contains("<svg") && html.contains("b0 → control"))
    }
}
