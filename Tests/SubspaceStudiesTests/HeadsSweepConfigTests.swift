import Foundation
import Testing
import SubspaceTestSupport
@testable import SubspaceTraining
@testable import SubspaceStudies

/// The heads study's per-method learning-rate sweep keys (configs/heads.yaml), spelled as the pipeline's.
@Suite struct HeadsSweepConfigTests {
    @Test func shippedConfigSweepsEachMethodOverThreeSeeds() throws {
        let c = try HeadsStudyConfig.load(path: TestFiles.repository + "/configs/heads.yaml",
                                          overrides: ["lora.learning_rates=[0.003, 0.01]", "lora.max_extensions=1"])
        #expect(c.fft.learningRates.count >= 3 && c.fft.maxExtensions >= 1)
        #expect(c.lora.learningRates == [0.003, 0.01] && c.lora.maxExtensions == 1)
        #expect(c.seeds.count >= 3)
        // No fixed rate left in the runs' overrides: the sweep sets it.
        #expect(!(c.fft.set + c.lora.set).contains { $0.hasPrefix("training.learning_rate=") })
        let s = HeadsStudyConfig.sweep(c.fft, seeds: c.seeds)
        #expect(s.problems(prefix: "fft").isEmpty && s.sweepSeeds == 1)
    }

    @Test func badSweepKeysNameTheKey() {
        func message(_ yaml: String) -> String {
            do { _ = try HeadsStudyConfig.load(yaml: yaml); return "" } catch { return "\(error)" }
        }
        #expect(message("fft: {learning_rates: [0.001, fast]}").contains("fft.learning_rates"))
        #expect(message("lora: {learning_rates: [0.001, 0.001]}").contains("lora.learning_rates: values repeat"))
        #expect(message("lora: {learning_rates: [0.001], max_extensions: 20}").contains("lora.max_extensions"))
        #expect(message("base: {learning_rates: [0.001]}").contains("base.learning_rates"))
        #expect(message("fft: {learning_rate: [0.001]}").contains("fft.learning_rate"))
        // The study's seeds are a top-level key: a repeat names it, not a method's (non-existent) fft.seeds.
        let repeated = message("seeds: [1, 1]")
        #expect(repeated.contains("seeds: values repeat") && !repeated.contains("fft."), "\(repeated)")
    }
}
