// cxxmap: a C++ container workload, std::map<std::string, std::string>
// churn across threads, through operator new and delete.
//
//   cxxmap [-t THREADS] [-n OPS] [-k KEYS] [-r SEED] [-q]
//
// Each thread keeps a map of up to KEYS entries (default 2000) and does
// OPS operations in all (default 2m, split between the threads): insert a
// key of 8..64 characters with a value of 8..200 (most strings are longer
// than the 15 characters std::string keeps inline, so they allocate),
// look one up, or erase one. Every 256th operation it moves 32 nodes
// (std::map::extract, no copy) to the next thread through a small mutexed
// exchange, and adopts what the previous thread left: those nodes are then
// freed by a thread that did not allocate them. Every value is derived
// from its key and checked when it is looked up or erased; a mismatch
// ends the program with status 2, so a broken allocator cannot win.
// The map's nodes are deleted with sized delete (libstdc++'s allocator
// passes the size), the strings' buffers too.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

typedef std::map<std::string, std::string> table;

static uint64_t next_random(uint64_t &s)
{
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1DULL;
}

static std::string make_key(uint64_t r)
{
    size_t len = 8 + r % 57;
    std::string k(len, 'a');
    for (size_t i = 0; i < len; i++, r = r * 6364136223846793005ULL + 1442695040888963407ULL)
        k[i] = (char)('a' + (r >> 59));
    return k;
}

// The value is a function of the key: checked on every lookup and erase.
static std::string make_value(const std::string &key)
{
    uint64_t h = 1469598103934665603ULL;
    for (char c : key)
        h = (h ^ (unsigned char)c) * 1099511628211ULL;
    std::string v(8 + h % 193, (char)('A' + h % 26));
    memcpy(&v[0], &h, 8);
    return v;
}

static void check(const std::string &key, const std::string &value)
{
    if (value != make_value(key)) {
        fprintf(stderr, "cxxmap: CHECK FAILED: wrong value for a key of %zu bytes\n", key.size());
        exit(2);
    }
}

struct exchange {
    std::mutex lock;
    std::vector<table::node_type> nodes;
};

static void worker(unsigned id, unsigned nthreads, long ops, size_t keys, uint64_t seed,
                   std::vector<exchange> *slots)
{
    table m;
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + id + 1;
    exchange &out = (*slots)[(id + 1) % nthreads], &in = (*slots)[id];
    for (long i = 0; i < ops; i++) {
        uint64_t r = next_random(s);
        std::string key = make_key(r % (keys * 4));
        switch (r >> 62) {
        case 0:
        case 1:
            if (m.size() < keys)
                m.emplace(key, make_value(key));
            break;
        case 2: {
            auto it = m.find(key);
            if (it != m.end())
                check(it->first, it->second);
            break;
        }
        default: {
            auto it = m.lower_bound(key);
            if (it != m.end()) {
                check(it->first, it->second);
                m.erase(it);
            }
            break;
        }
        }
        if ((i & 255) == 255 && nthreads > 1) {
            std::vector<table::node_type> moving;
            for (int k = 0; k < 32 && !m.empty(); k++)
                moving.push_back(m.extract(m.begin()));
            {
                std::lock_guard<std::mutex> g(out.lock);
                for (auto &n : moving)
                    out.nodes.push_back(std::move(n));
            }
            std::vector<table::node_type> taken;
            {
                std::lock_guard<std::mutex> g(in.lock);
                taken.swap(in.nodes);
            }
            for (auto &n : taken) {
                check(n.key(), n.mapped());
                if (m.size() < keys)
                    m.insert(std::move(n)); // a duplicate key stays in n, freed here
            }
        }
    }
    for (auto &kv : m)
        check(kv.first, kv.second);
}

int main(int argc, char **argv)
{
    unsigned nthreads = 1;
    long ops = 2000000;
    size_t keys = 2000;
    uint64_t seed = 1;
    bool quiet = false;
    int c;
    while ((c = getopt(argc, argv, "t:n:k:r:q")) != -1) {
        char *end;
        switch (c) {
        case 't':
            nthreads = (unsigned)atoi(optarg);
            break;
        case 'n':
            ops = strtol(optarg, &end, 10);
            if (*end == 'k')
                ops *= 1000;
            else if (*end == 'm')
                ops *= 1000000;
            break;
        case 'k':
            keys = (size_t)atol(optarg);
            break;
        case 'r':
            seed = strtoull(optarg, nullptr, 10);
            break;
        case 'q':
            quiet = true;
            break;
        default:
            fprintf(stderr, "usage: cxxmap [-t THREADS] [-n OPS] [-k KEYS] [-r SEED] [-q]\n");
            return 1;
        }
    }
    if (nthreads < 1 || ops < 1 || keys < 1)
        return 1;
    std::vector<exchange> slots(nthreads);
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < nthreads; t++)
        threads.emplace_back(worker, t, nthreads, ops / nthreads, keys, seed, &slots);
    for (auto &t : threads)
        t.join();
    for (auto &x : slots)
        for (auto &n : x.nodes)
            check(n.key(), n.mapped());
    if (!quiet)
        printf("cxxmap: %u threads, %ld operations\n", nthreads, ops);
    return 0;
}
