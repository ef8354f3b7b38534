import Foundation
import SubspaceDistributed
import Testing

@Suite struct AllReduceCostModelTests {
    @Test func ringFormula() {
        let model = AllReduceCostModel(alpha: 10e-6, beta: 1e-9)
        #expect(model.seconds(bytes: 1e6, ranks: 1) == 0)
        // p = 4: 6 steps of α, and 2·3/4 of the megabyte at 1 ns/byte.
        #expect(abs(model.seconds(bytes: 1e6, ranks: 4) - (6 * 10e-6 + 1.5e-3)) < 1e-15)
    }

    @Test(arguments: [2, 3, 8])
    func recoversAlphaAndBeta(ranks: Int) throws {
        let truth = AllReduceCostModel(alpha: 35e-6, beta: 0.8e-9)
        // Measurements within ±2 % of the model, alternating in sign.
        let samples = [4096, 65536, 1 << 20, 16 << 20, 64 << 20].enumerated().map { i, bytes in
            (bytes: bytes, seconds: truth.seconds(bytes: Double(bytes), ranks: ranks) * (i % 2 == 0 ? 1.02 : 0.98))
        }
        let fit = try #require(AllReduceCostModel.fit(samples, ranks: ranks))
        #expect(!fit.pinned)
        #expect(abs(fit.model.alpha / truth.alpha - 1) < 0.05, "\(fit.model)")
        #expect(abs(fit.model.beta / truth.beta - 1) < 0.05, "\(fit.model)")
        #expect(fit.relativeError < 0.03)
    }

    @Test func exactDataFitsExactly() throws {
        let truth = AllReduceCostModel(alpha: 2e-6, beta: 0.25e-9)
        let samples = [1024, 1 << 20, 8 << 20].map { (bytes: $0, seconds: truth.seconds(bytes: Double($0), ranks: 4)) }
        let fit = try #require(AllReduceCostModel.fit(samples, ranks: 4))
        #expect(abs(fit.model.alpha - truth.alpha) < 1e-12 && abs(fit.model.beta - truth.beta) < 1e-18)
        #expect(fit.relativeError < 1e-9)
    }

    @Test func negativeLatencyIsPinnedToZero() throws {
        // Pure bandwidth with small sizes measured a little fast: an unconstrained fit gives α < 0.
        let samples = [(bytes: 1 << 10, seconds: 0.5e-6), (bytes: 1 << 20, seconds: 1e-3), (bytes: 4 << 20, seconds: 4e-3)]
        let fit = try #require(AllReduceCostModel.fit(samples, ranks: 2))
        #expect(fit.model.alpha >= 0 && fit.model.beta > 0)
        #expect(fit.pinned)
    }

    @Test func refusesTooLittleData() {
        #expect(AllReduceCostModel.fit([(bytes: 1024, seconds: 1e-5)], ranks: 2) == nil)
        #expect(AllReduceCostModel.fit([(bytes: 1024, seconds: 1e-5), (bytes: 2048, seconds: 2e-5)], ranks: 1) == nil)
        #expect(AllReduceCostModel.fit([(bytes: 1024, seconds: 0), (bytes: 2048, seconds: 2e-5)], ranks: 2) == nil)
    }
}
