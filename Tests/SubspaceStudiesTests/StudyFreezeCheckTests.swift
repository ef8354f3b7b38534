import Foundation
import Testing
import SubspaceModel
@testable import SubspaceTraining
@testable import SubspaceStudies
import SubspaceTestSupport

/// The parameter report against the layout, and `--check-step`: one real training step through the
/// trainer, passing for every mode and failing, naming the tensor, when a tensor meant to be frozen is
/// made trainable behind the config's back (the seed's "frozen" model that was not frozen).
@Suite struct StudyFreezeCheckTests {
    static let output = NSTemporaryDirectory() + "/unused"

    @Test(arguments: QKFreezeMode.allCases)
    func reportCountsEqualTheLayout(_ mode: QKFreezeMode) throws {
        let config = StudyTestSupport.trainConfig(output: Self.output)
        let report = try FreezeCheck.parameterReport(config: config, mode: mode)
        let layout = ParameterLayout(config: ModelConfig(family: .gpt2, vocabularySize: 256, hiddenSize: 32, layerCount: 2,
                                                         headCount: 4, maxPositions: 32))
        #expect(report.rows.map(\.name) == layout.entries.map(\.name))
        #expect(report.rows.map(\.count) == layout.entries.map(\.count))
        #expect(report.rows.map(\.shape) == layout.entries.map(\.shape))
        #expect(report.total == layout.parameterCount)
        let qk = OrthogonalInit.roles(layerCount: 2).reduce(0) { $0 + layout[$1].count }
        #expect(qk == 2 * 2 * 32 * 32)
        #expect(report.frozen == (mode == .orthoFrozen ? qk : 0))
        #expect(report.trainable + report.frozen == report.total)
        let frozenNames = Set(report.rows.filter { !$0.trainable }.map(\.name))
        #expect(frozenNames == (mode == .orthoFrozen ? ["layers.0.attn.q.weight", "layers.0.attn.k.weight", "layers.1.attn.q.weight", "layers.1.attn.k.weight"] : []))
        #expect(report.table.contains("frozen \(report.frozen)"))
    }

    @Test(arguments: QKFreezeMode.allCases)
    func checkStepPasses(_ mode: QKFreezeMode) throws {
        let check = try FreezeCheck.run(config: StudyTestSupport.trainConfig(output: Self.output), mode: mode)
        #expect(check.passed, "\(check.summary)")
        #expect(check.outcomes.count == check.report.rows.count)
        #expect(check.outcomes.filter(\.intendedFrozen).count == (mode == .orthoFrozen ? 4 : 0))
        #expect(check.loss.isFinite)
    }

    @Test func checkStepFailsWhenAFrozenTensorTrains() throws {
        let check = try FreezeCheck.run(config: StudyTestSupport.trainConfig(output: Self.output), mode: .orthoFrozen,
                                        simulateUnfrozen: ["layers.1.attn.k.weight"])
        #expect(!check.passed)
        #expect(check.failures.map(\.name) == ["layers.1.attn.k.weight"])
        let failure = check.failures[0]
        #expect(failure.intendedFrozen && !failure.markedFrozen && failure.changedElements > 0)
        #expect(failure.problem?.contains("meant to be frozen") == true)
        #expect(check.summary.contains("FAILED") && check.summary.contains("layers.1.attn.k.weight"))
        // The parameter report of the broken model would have hidden nothing but shown the wrong count.
        #expect(check.report.frozen == 3 * 32 * 32)
    }

    @Test func checkStepCoversConfigFreezeAndUnknownNames() throws {
        var config = StudyTestSupport.trainConfig(output: Self.output)
        config.training.freeze = ["layers\\.0\\.mlp\\..*"]
        let check = try FreezeCheck.run(config: config, mode: .ortho)
        #expect(check.passed, "\(check.summary)")
        #expect(Set(check.outcomes.filter(\.intendedFrozen).map(\.name)).isSuperset(of: ["layers.0.mlp.up.weight", "layers.0.mlp.down.bias"]))
        #expect(throws: TrainingError.self) {
            try FreezeCheck.run(config: config, mode: .ortho, simulateUnfrozen: ["layers.9.attn.q.weight"])
        }
    }

    @Test func checkStepWithLoRA() throws {
        var config = StudyTestSupport.trainConfig(output: Self.output)
        config.lora = TrainConfig.LoRA()
        config.lora?.targets = ["c_attn"]
        let check = try FreezeCheck.run(config: config)
        #expect(check.passed, "\(check.summary)")
        #expect(check.outcomes.filter { !$0.intendedFrozen }.count == 4, "lora_A and lora_B of two layers")
        #expect(check.outcomes.contains { $0.note?.contains("B starts at zero") == true })
    }
}
