"""demo.py: not implemented yet (see the open issue "Detection, demo and deploy")."""
import sys

if __name__ == "__main__":
    sys.exit("demo.py is not implemented yet: it lands with the detection/demo/deploy issue.")
