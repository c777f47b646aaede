from anyref_ros.nodes.anyref.node import main

main()
