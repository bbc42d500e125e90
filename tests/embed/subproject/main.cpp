#include "actors/node.hpp"

int main() {
  return 0;
}
