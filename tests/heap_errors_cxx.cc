// heap_errors_cxx.cc - a correct multithreaded C++ program for the
// heap-error suite (t_heaperrors.c): iostream, exceptions (libstdc++'s
// emergency pool), strings and maps from four threads. In check mode with
// the leak report on it must get no report at all. Built linked with
// libtlmalloc and plain (run with LD_PRELOAD), like heap_errors.
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

static std::map<int, std::string> global_table; // still reachable at exit

static void work(int id)
{
    std::map<int, std::string> local;
    for (int k = 0; k < 2000; k++)
        local[k] = std::string(40 + k % 60, static_cast<char>('a' + k % 26));
    auto shared = std::make_shared<std::vector<int>>(1000, id);
    try {
        throw std::runtime_error("thread " + std::to_string(id) + " " + local[7]);
    } catch (const std::exception &e) {
        if (std::strncmp(e.what(), "thread", 6) != 0)
            std::abort();
    }
}

int main(int argc, char **argv)
{
    if (argc != 2 || std::strcmp(argv[1], "correct_cxx") != 0) {
        std::cout << "error usage: heap_errors_cxx correct_cxx" << std::endl;
        return 2;
    }
    for (int k = 0; k < 100; k++)
        global_table[k] = std::string(100, 'g');
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; i++)
        threads.emplace_back(work, i);
    for (auto &t : threads)
        t.join();
    try {
        throw std::out_of_range("main");
    } catch (const std::exception &e) {
        std::cout << "caught " << e.what() << std::endl;
    }
    std::cout << "done" << std::endl;
    return 0;
}
