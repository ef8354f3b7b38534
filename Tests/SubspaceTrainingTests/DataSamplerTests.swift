import Testing
import SubspaceCore
@testable import SubspaceTraining

@Suite struct DataSamplerTests {
    /// (samples, global batch): a batch that divides an epoch, one that straddles epochs, one larger than an epoch.
    static let shapes: [(count: Int, globalBatch: Int)] = [(32, 8), (10, 4), (3, 8)]

    @Test(arguments: shapes.indices)
    func globalBatchesDoNotDependOnWorldSize(shape: Int) throws {
        let (count, G) = Self.shapes[shape]
        let sampler = GlobalSampler(count: count, globalBatch: G, seed: 42)
        for step in 0..<25 {
            let global = sampler.indices(step: step)
            #expect(global.count == G)
            for worldSize in [1, 2, 4] {
                let slices = try (0..<worldSize).map { try sampler.indices(step: step, rank: $0, worldSize: worldSize) }
                // The ranks' slices, in rank order, are the global batch: they partition it into
                // contiguous equal parts.
                #expect(slices.allSatisfy { $0.count == G / worldSize })
                #expect(Array(slices.joined()) == global, "step \(step), \(worldSize) ranks")
                // A fresh sampler with its own world size sees the same global batch.
                let other = GlobalSampler(count: count, globalBatch: G, seed: 42)
                #expect(try (0..<worldSize).flatMap { try other.indices(step: step, rank: $0, worldSize: worldSize) } == global)
            }
        }
    }

    @Test(arguments: shapes.indices)
    func epochsArePermutations(shape: Int) {
        let (count, G) = Self.shapes[shape]
        let sampler = GlobalSampler(count: count, globalBatch: G, seed: 5)
        let epochs = 3
        // Steps covering `epochs` whole epochs (plus a little), concatenated, cut into epochs.
        let steps = (epochs * count + G - 1) / G
        let stream = (0..<steps).flatMap { sampler.indices(step: $0) }
        for e in 0..<epochs {
            let epoch = Array(stream[e * count..<(e + 1) * count])
            #expect(epoch.sorted() == Array(0..<count), "epoch \(e) visits every sample once")
            var rng = RandomStream(seed: 5).split(UInt64(e))
            #expect(epoch == rng.permutation(count), "epoch \(e) is split(\(e))'s permutation")
            #expect(epoch == sampler.permutation(epoch: e))
        }
        if count > 3 { #expect(sampler.permutation(epoch: 0) != sampler.permutation(epoch: 1)) }
        #expect(sampler.epoch(ofStep: steps - 1) == ((steps - 1) * G) / count)
    }

    @Test func indicesArePureFunctionsOfSeedAndStep() throws {
        let a = GlobalSampler(count: 1000, globalBatch: 64, seed: 9)
        let forward = (0..<40).map { a.indices(step: $0) }
        let b = GlobalSampler(count: 1000, globalBatch: 64, seed: 9)
        // Any order of calls (as after a resume at step 37, or going back) gives the same batches.
        for step in [37, 3, 39, 0, 16, 15, 37, 21] { #expect(b.indices(step: step) == forward[step]) }
        let copy = b
        #expect(copy.indices(step: 22) == forward[22])
        #expect(try a.indices(step: 17, rank: 3, worldSize: 4) == Array(forward[17][48..<64]))
        #expect(GlobalSampler(count: 1000, globalBatch: 64, seed: 10).indices(step: 0) != forward[0])
    }

    @Test func microBatchesSplitTheRankSlice() throws {
        let sampler = GlobalSampler(count: 50, globalBatch: 12, seed: 1)
        for step in 0..<10 {
            for rank in 0..<2 {
                let slice = try sampler.indices(step: step, rank: rank, worldSize: 2)
                let micro = try sampler.microBatches(step: step, rank: rank, worldSize: 2, microBatch: 3)
                #expect(micro.count == 2 && micro.allSatisfy { $0.count == 3 })
                #expect(Array(micro.joined()) == slice)
                #expect(try sampler.microBatches(step: step, rank: rank, worldSize: 2, microBatch: 6) == [slice])
            }
        }
        #expect(throws: SamplerError.self) { try sampler.indices(step: 0, rank: 0, worldSize: 5) }
        #expect(throws: SamplerError.self) { try sampler.microBatches(step: 0, rank: 0, worldSize: 2, microBatch: 4) }
        #expect(throws: SamplerError.self) { try sampler.microBatches(step: 0, rank: 0, worldSize: 3, microBatch: 0) }
        #expect(try sampler.localBatch(worldSize: 4) == 3)
    }
}
